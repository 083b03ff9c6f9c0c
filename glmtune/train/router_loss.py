"""The router auxiliary (load-balancing) loss of the MoE families, measured in training and reported in the logs.

The GLM MoE routers balance with a per-expert score bias, not with a loss term, and transformers' ``Glm4Moe*`` /
``GlmMoeDsa`` models return router logits but compute no auxiliary loss. glmtune measures, on every training
forward, the Switch-Transformer load-balancing loss averaged over the MoE layers, ``E * sum_e f_e * p_e`` (``f_e``:
the share of the top-k assignments that go to expert ``e``; ``p_e``: its mean normalised sigmoid score over the
tokens, padding included; 1.0 = perfectly balanced), and logs it as ``router_aux_loss``. With
``method.router_aux_loss_coef > 0`` the loss the optimiser sees becomes ``loss + coef * router_aux_loss``.
"""

from __future__ import annotations

from typing import Any

import torch


class RouterAuxLoss:
    """Forward hooks on every ``*TopkRouter`` of ``model`` and on the model itself."""

    def __init__(self, model: Any, coef: float = 0.0) -> None:
        self.coef = float(coef)
        self._values: list[torch.Tensor] = []
        self._total: torch.Tensor | None = None
        self._steps = 0
        routers = [m for m in model.modules() if type(m).__name__.endswith("TopkRouter")]
        for router in routers:
            router.register_forward_hook(self._router)
        top = model.get_base_model() if hasattr(model, "get_base_model") else model
        top.register_forward_pre_hook(self._start, with_kwargs=True)
        top.register_forward_hook(self._end, with_kwargs=True)
        self.routers = len(routers)

    def _router(self, module: Any, args: Any, output: Any) -> None:
        if not module.training or not isinstance(output, tuple) or len(output) < 3:
            return
        logits, _, chosen = output[0], output[1], output[2]
        experts = logits.shape[-1]
        scores = logits.float().sigmoid()
        share = torch.nn.functional.one_hot(chosen.reshape(-1), experts).float().mean(0)
        prob = (scores / scores.sum(-1, keepdim=True).clamp_min(1e-20)).reshape(-1, experts).mean(0)
        self._values.append(experts * (share * prob).sum())

    def _start(self, module: Any, args: Any, kwargs: Any) -> None:
        self._values = []

    def _end(self, module: Any, args: Any, kwargs: Any, output: Any) -> Any:
        if not module.training or not self._values:
            return None
        aux = torch.stack(self._values).mean()
        self._values = []  # a recomputation under activation checkpointing adds nothing to this step
        self._total = aux.detach() if self._total is None else self._total + aux.detach()
        self._steps += 1
        loss = getattr(output, "loss", None)
        if self.coef and loss is not None:
            output.loss = loss + self.coef * aux.to(loss.dtype)
            return output
        return None

    def pop_mean(self) -> float | None:
        """The mean auxiliary loss of the forwards since the last call (None when there were none)."""
        if self._total is None:
            return None
        value = float(self._total) / self._steps
        self._total, self._steps = None, 0
        return value
