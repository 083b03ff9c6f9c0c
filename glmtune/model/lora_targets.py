"""What a LoRA adapter targets: module names, presets of the native families, expert parameters, full modules.

``method.lora_targets`` names native modules (``q_proj``, or a dotted suffix such as ``mlp.gate_proj``), official
ChatGLM names (``query_key_value``, translated per family) or a family's presets (``attention``, ``dense_mlp``,
``experts``...; see ``families/glm_moe.py``). A preset entry ``@name`` is a parameter (peft ``target_parameters``:
the routed experts' fused 3D weights), ``+name`` a module trained in full (peft ``modules_to_save``).

peft 0.21 rewrites, for MoE models, any target ending in ``gate_proj``/``up_proj``/``down_proj``/``gate`` into the
fused expert parameters (a conversion meant for adapters trained on transformers 4; peft issue #3711), which would
turn "the dense MLP" into "the experts". glmtune's targets always name the transformers 5 modules, so that rewrite
is switched off while glmtune builds or loads an adapter (:func:`explicit_targets`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from glmtune.errors import GlmtuneError


@dataclass
class LoraTargets:
    modules: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)

    def peft_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"target_modules": self.modules}
        if self.parameters:
            out["target_parameters"] = self.parameters
        if self.full:
            out["modules_to_save"] = self.full
        return out


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def resolve_targets(model: Any, family: Any, names: list[str] | None) -> LoraTargets:
    """The adapter targets of ``names`` (the family's default when empty), checked against ``model``."""
    modules = [n for n, _ in model.named_modules()]
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) or _linear_like(m)]
    pools = {"modules": linear, "full": modules, "parameters": [n for n, _ in model.named_parameters()]}
    presets: dict[str, tuple[str, ...]] = getattr(family, "lora_presets", {}) or {}
    out = LoraTargets()
    missing: list[str] = []
    for name in names or list(family.lora_targets):
        if name in presets:
            found = _add(out, presets[name], pools, skip_missing=True)
            if not found:
                raise GlmtuneError(f"method.lora_targets: preset {name!r} matches nothing in this {family.title} model")
            continue
        for target in family.official_modules.get(name, (name,)):
            if not _add(out, (target,), pools, skip_missing=False):
                missing.append(target)
    if missing:
        present = sorted({n.rsplit(".", 1)[-1] for n in linear})
        hint = f"; presets are {', '.join(sorted(presets))}" if presets else ""
        raise GlmtuneError(
            f"method.lora_targets: {', '.join(missing)} not in this {family.title} model; "
            f"linear modules are {', '.join(present)}{hint}"
        )
    for attr in ("modules", "parameters", "full"):
        setattr(out, attr, list(dict.fromkeys(getattr(out, attr))))
    return out


def _linear_like(module: Any) -> bool:
    return type(module).__name__.startswith("Linear")


PREFIXES = {"@": "parameters", "+": "full"}


def _add(out: LoraTargets, entries: tuple[str, ...], pools: dict[str, list[str]], skip_missing: bool) -> int:
    """Add the entries present in the model to ``out``; the number added (0 when one is missing and not skipped)."""
    found = 0
    for entry in entries:
        kind = PREFIXES.get(entry[0], "modules")
        target = entry[1:] if kind != "modules" else entry
        if any(_matches(n, target) for n in pools[kind]):
            getattr(out, kind).append(target)
            found += 1
        elif not skip_missing:
            return 0
    return found


@contextlib.contextmanager
def explicit_targets() -> Iterator[None]:
    """Build or load peft adapters with their targets taken as written (no transformers-4 MoE rewrite)."""
    try:
        from peft.utils import transformers_weight_conversion as conversion
    except ImportError:  # a peft without the rewrite
        yield
        return
    original = conversion.convert_peft_config_for_transformers
    conversion.convert_peft_config_for_transformers = lambda *args, **kwargs: None
    try:
        yield
    finally:
        conversion.convert_peft_config_for_transformers = original
