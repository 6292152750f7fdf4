"""Stage ``lowrank``: replace linear and conv weights by truncated-SVD factors, then (in a later
``train`` stage, optionally) fine-tune.

A ``Linear(in, out)`` of weight W (out × in) becomes ``Linear(in, r, no bias) → Linear(r, out)``
with W ≈ U_r Σ_r V_rᵀ split as (Σ_r^½ V_rᵀ) and (U_r Σ_r^½). A ``Conv2d(in, out, k×k)`` becomes a
``k×k`` conv to r channels followed by a 1×1 conv to ``out`` (the SVD of W reshaped to
out × (in·k·k): the spatial factorisation of Jaderberg et al./Tucker-2 with the input mode
kept whole). A layer is factorised only where that saves parameters: r · (rows + cols) <
rows · cols. The rank is ``rank_ratio`` of the full rank, or the smallest that keeps
``energy_kept`` of the squared singular values. Grouped (depthwise) convs and the final
layer are left alone.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from greenbench.pipeline.base import StageContext, StageResult
from greenbench.tasks.base import Task

LAYERS = ("linear", "conv", "all")


def rank_for(singular: Any, rank_ratio: float | None, energy_kept: float | None) -> int:
    """The rank to keep of singular values ``singular`` (descending)."""
    full = int(singular.numel())
    if rank_ratio is not None:
        return max(1, min(full, math.ceil(rank_ratio * full)))
    assert energy_kept is not None
    energy = (singular**2).cumsum(0) / (singular**2).sum()
    return max(1, min(full, int((energy < energy_kept - 1e-12).sum().item()) + 1))


def factor_layer(m: Any, rank: int) -> Any:
    """``m`` (a ``Linear`` or an ungrouped ``Conv2d``) as its rank-``rank`` SVD factors: a
    ``LowRankLinear`` or ``LowRankConv2d`` (equal to ``m`` at full rank, up to rounding)."""
    import torch
    from torch import nn

    from greenbench.tasks.classify.layers import LowRankConv2d, LowRankLinear
    from greenbench.tasks.classify.models import layer_spec

    w = m.weight.detach().double()
    u, s, vh = torch.linalg.svd(w.reshape(w.shape[0], -1), full_matrices=False)
    root = s[:rank].sqrt()
    first = (root[:, None] * vh[:rank]).float()  # rank × (in·k·k)
    second = (u[:, :rank] * root[None, :]).float()  # out × rank
    if isinstance(m, nn.Linear):
        new: Any = LowRankLinear(m.in_features, m.out_features, rank, m.bias is not None)
        new[0].weight.data.copy_(first)
        new[1].weight.data.copy_(second)
    else:
        new = LowRankConv2d(layer_spec(m) or {}, rank)
        new[0].weight.data.copy_(first.reshape(rank, *w.shape[1:]))
        new[1].weight.data.copy_(second.reshape(w.shape[0], rank, 1, 1))
    if m.bias is not None:
        new[1].bias.data.copy_(m.bias.detach())
    return new


def factorize(
    model: Any, rank_ratio: float | None, energy_kept: float | None, layers: str, protected: set[str]
) -> list[dict[str, Any]]:
    """Factorise ``model``'s layers in place; one entry per layer considered (name, shape,
    rank kept, parameters before and after, whether it was replaced)."""
    import torch
    from torch import nn

    from greenbench.tasks.classify.models import set_module

    done = []
    targets = [
        (n, m) for n, m in model.named_modules()
        if n not in protected
        and ((isinstance(m, nn.Linear) and layers in ("linear", "all"))
             or (isinstance(m, nn.Conv2d) and m.groups == 1 and layers in ("conv", "all")))
    ]  # fmt: skip
    for name, m in targets:
        w = m.weight.detach().double()
        matrix = w.reshape(w.shape[0], -1)  # out × (in·k·k)
        s = torch.linalg.svdvals(matrix)
        r = rank_for(s, rank_ratio, energy_kept)
        rows, cols = matrix.shape
        before = rows * cols
        after = r * (rows + cols)
        entry = {"layer": name, "shape": list(w.shape), "rank": r, "full_rank": int(s.numel()),
                 "weights_before": before, "weights_after": after if after < before else before,
                 "replaced": after < before}  # fmt: skip
        done.append(entry)
        if after >= before:
            continue
        new = factor_layer(m, r)
        set_module(model, name, new)
    return done


class LowRankStage:
    """``lowrank {rank_ratio | energy_kept, layers}``: truncated-SVD factorisation."""

    name: ClassVar[str] = "lowrank"
    variant_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task]) -> dict[str, Any]:
        """Exactly one of ``rank_ratio`` (0, 1] or ``energy_kept`` (0, 1]; ``layers``."""
        unknown = sorted(set(params) - {"rank_ratio", "energy_kept", "layers"})
        if unknown:
            raise ValueError(f"unknown lowrank parameter(s) {', '.join(unknown)}; expected rank_ratio or "
                             "energy_kept, and layers")  # fmt: skip
        chosen = [k for k in ("rank_ratio", "energy_kept") if k in params]
        if len(chosen) != 1:
            raise ValueError("lowrank needs exactly one of rank_ratio or energy_kept (a fraction in (0, 1])")
        value = params[chosen[0]]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"lowrank {chosen[0]} must be a fraction in (0, 1], got {value!r}")
        layers = params.get("layers", "all")
        if layers not in LAYERS:
            raise ValueError(f"lowrank layers must be one of {', '.join(LAYERS)}, got {layers!r}")
        return {chosen[0]: float(value), "layers": layers}

    def run(self, ctx: StageContext) -> StageResult:
        """Factorise the parent's model (no training: a ``train`` stage after it fine-tunes)."""
        from greenbench.tasks.classify.models import head

        window = ctx.meter.begin()
        model = ctx.start_model()
        protected = {head(model)[0]}
        before = sum(p.numel() for p in model.parameters())
        layers = factorize(model, ctx.params.get("rank_ratio"), ctx.params.get("energy_kept"),
                           ctx.params["layers"], protected)  # fmt: skip
        after = sum(p.numel() for p in model.parameters())
        checkpoint = ctx.task.save(model, ctx.out_dir / "weights" / "lowrank.pt")
        info = {
            "params_before": before,
            "params_after": after,
            "layers_replaced": sum(e["replaced"] for e in layers),
            "layers_kept": sum(not e["replaced"] for e in layers),
            "protected": sorted(protected),
            "method": "truncated SVD; conv k×k → k×k to r channels + 1×1 (Tucker-2, input mode whole)",
            "layers": layers,
        }
        return StageResult(checkpoint, ctx.meter.end(window), info)
