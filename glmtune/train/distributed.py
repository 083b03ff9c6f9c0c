"""What glmtune adds to accelerate's distributed setups: FSDP on CPU processes, and usable model files from FSDP.

* accelerate turns ``ACCELERATE_USE_FSDP`` (``accelerate launch --config_file configs/deepspeed/fsdp.yaml``) or a
  ``training.fsdp`` setting into FSDP only on accelerator devices; CPU processes over gloo silently fall back to DDP.
  torch's ``fully_shard`` itself runs on CPU + gloo, so :func:`promote_cpu_fsdp` hands accelerate's state the
  plugin it would have built on GPUs: the same FSDP2 code path (sharding, sharded checkpoints, resume) then runs in
  the CPU tests. On GPUs it does nothing.
* For CPU processes accelerate also leaves DeepSpeed's communication layer uninitialised; ZeRO-3 needs it while
  the model is built (``zero.Init``): :func:`join_deepspeed_comm` attaches it to the process group accelerate made.
* FSDP with ``SHARDED_STATE_DICT`` checkpoints saves no model files; :func:`full_state_dict` gathers the full
  state dict (a collective: every rank calls it) so a checkpoint and the final output hold a loadable adapter or
  model as in single-process runs.
"""

from __future__ import annotations

import os
from typing import Any


def fsdp_requested(plugin_args: dict[str, Any] | None) -> bool:
    """Whether this run asked for FSDP (launcher environment or ``training.fsdp``)."""
    return plugin_args is not None or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def promote_cpu_fsdp(accelerator: Any, plugin_args: dict[str, Any] | None) -> bool:
    """Make a multi-process CPU run that asked for FSDP use it (accelerate would run DDP); True when it did."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU or not fsdp_requested(plugin_args):
        return False
    plugin = FullyShardedDataParallelPlugin(**plugin_args) if plugin_args else FullyShardedDataParallelPlugin()
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True


def sharded_only(trainer: Any) -> bool:
    """FSDP whose checkpoints hold only sharded weights (transformers then writes no model files)."""
    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    return bool(trainer.is_fsdp_enabled and plugin is not None and "FULL_STATE_DICT" not in str(plugin.state_dict_type))


def full_state_dict(trainer: Any) -> dict[str, Any]:
    """The whole model's state dict on the main process (gathered from every rank's shards)."""
    return trainer.accelerator.get_state_dict(trainer.model)


def join_deepspeed_comm(args: Any) -> None:
    """Initialise ``deepspeed.comm`` on the existing gloo group of a CPU DeepSpeed run (no-op elsewhere)."""
    if not args.deepspeed or not args.use_cpu or args.world_size <= 1:  # world_size sets up the process group
        return
    import deepspeed.comm as ds_comm
    import torch.distributed as tdist

    if tdist.is_initialized() and not ds_comm.is_initialized():
        ds_comm.init_distributed(dist_backend=tdist.get_backend(), auto_mpi_discovery=False)
