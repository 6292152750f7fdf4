"""Stage ``prune``: structural channel pruning with torch-pruning's dependency graph.

Two criteria. ``group`` (the default): the channels of every coupled group (a conv, its BN,
the convs that read it, the residual adds and concats that tie channels together) are ranked by
an importance and the lowest fraction ``ratio`` is removed from the network for real (smaller
tensors, not masks). ``bn_scale`` ranks by |γ| with one raw threshold over the whole network
(``global: true``, network slimming); ``l1``/``l2`` by the weights' norms; ``random`` is the
control. ``bn_threshold`` (module ``bn_threshold``): the YOLOv5 study's authors' global |γ|
threshold over BN channels; ``ratio`` is a fraction of the BN channels outside the protected
layers and the residual-path BNs, which keep all their channels. What may be pruned, which
layers are never a pruning root (their outputs keep their shape: a detector's head, a
classifier's final layer) and which BNs are residual, is the task's to say (``Task.prunable``),
as is how the pruned module is saved.

Ties: a detector's checkpoint stores weights in fp16, where γ takes a few hundred distinct
values, and torch-pruning's global threshold removes *every* channel at the threshold, so ties
over-prune (0.3 asked removed 36.7 %). The detection task hands over the parent's fp32 copy when
it has one, and the stage always breaks exact ties (``TieBreak``), so the ratio achieved stays
within ``RATIO_TOLERANCE`` of the ratio asked.
"""

from __future__ import annotations

from typing import Any, ClassVar

from greenbench.errors import GreenbenchError
from greenbench.pipeline.base import StageContext, StageResult
from greenbench.pipeline.export import DEFAULT_IMGSZ
from greenbench.tasks.base import Task

IMPORTANCES = ("bn_scale", "l1", "l2", "random")
#: torch-pruning may take at most this fraction of any one layer's channels
MAX_PRUNING_RATIO = 0.9
#: |ratio achieved - ratio asked| the stage guarantees on the group-channel basis (integer
#: rounding, and groups torch-pruning skips because they would lose every channel, or hit
#: MAX_PRUNING_RATIO, cost a few channels of ~4,000 in the quickstart's detector)
RATIO_TOLERANCE = 0.02
#: relative size of the tie-breaking jitter: below fp32's resolution (6e-8), so it only orders
#: importances that are exactly equal
TIE_JITTER = 1e-9
PARAMS = ("ratio", "criterion", "importance", "global", "imgsz")
CRITERIA = ("group", "bn_threshold")
#: what ``ratio`` is a fraction of, per criterion (the record says it)
RATIO_BASIS = {
    "group": "channels of torch-pruning's prunable groups, coupled channels counted once",
    "bn_threshold": (
        "BN channels (γ) outside the protected layers and the residual-path BNs, one global |γ| "
        "threshold, capped so that every layer keeps a channel"
    ),
}


def _importance(kind: str) -> tuple[Any, dict[str, Any]]:
    """The torch-pruning importance for ``kind`` and how it is configured (for the record)."""
    import torch_pruning as tp

    if kind == "bn_scale":  # normalizer=None: one raw |γ| threshold (the default normalises per group)
        return tp.importance.BNScaleImportance(normalizer=None), {"normalizer": None, "reduction": "mean"}
    if kind in ("l1", "l2"):
        p = 1 if kind == "l1" else 2
        return tp.importance.MagnitudeImportance(p=p), {"p": p, "normalizer": "mean", "reduction": "mean"}
    return tp.importance.RandomImportance(), {}


class TieBreak:
    """Wraps a torch-pruning importance: importances that are exactly equal get a seeded,
    relative jitter of ``TIE_JITTER`` in float64, so a global threshold removes the number of
    channels asked for instead of every channel that ties at the threshold. Distinct float32
    (and fp16) values are never reordered: they differ by more than the jitter."""

    def __init__(self, base: Any, seed: int = 0) -> None:
        import torch

        self.base = base
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, group: Any) -> Any:
        """The base importance of ``group`` in float64, ties broken."""
        import torch

        imp = self.base(group)
        if imp is None:
            return None
        imp = imp.detach().double()
        u = torch.rand(imp.shape, generator=self.generator, dtype=torch.float64)
        return imp + (imp.abs() * TIE_JITTER + 1e-40) * u


def group_channels(pruner: Any) -> int:
    """Channels in the prunable groups of ``pruner``'s graph, each coupled channel once: the
    quantity torch-pruning's ``pruning_ratio`` is a fraction of."""
    dg = pruner.DG
    total = 0
    for group in dg.get_all_groups(
        ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types
    ):
        module, handler = group[0].dep.target.module, group[0].dep.handler
        count = (
            dg.get_out_channels(module)
            if dg.is_out_channel_pruning_fn(handler)
            else dg.get_in_channels(module)
        )
        total += int(count or 0)
    return total


def protected_shapes(protected: list[Any]) -> list[tuple[str, tuple[int, ...]]]:
    """(name, out-channel shape) of every conv and linear layer in the protected modules:
    pruning must leave them."""
    from torch import nn

    shapes: list[tuple[str, tuple[int, ...]]] = []
    for i, layer in enumerate(protected):
        for name, m in layer.named_modules():
            if isinstance(m, nn.Conv2d):
                shapes.append((f"{i}.{name}", (m.out_channels,)))
            elif isinstance(m, nn.Linear):
                shapes.append((f"{i}.{name}", (m.out_features,)))
    return shapes


def bn_channels(model: Any, protected: list[Any]) -> int:
    """BatchNorm channels (γ) outside the protected layers."""
    from torch import nn

    inside = {id(m) for layer in protected for m in layer.modules()}
    return int(
        sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d) and id(m) not in inside)
    )


def _counts(model: Any, protected: list[Any], imgsz: int) -> dict[str, float]:
    """Params, GMACs, GFLOPs (= 2 × GMACs) and BN channels; counted on a copy, since the
    counting forward runs in inference mode (a detector's head caches its anchors)."""
    import copy

    from greenbench.measure.complexity import count_macs, count_params

    macs = count_macs(copy.deepcopy(model), imgsz)
    return {
        "params": count_params(model),
        "gmacs": macs / 1e9,
        "gflops": 2 * macs / 1e9,
        "bn": bn_channels(model, protected),
    }


def _imgsz(params: dict[str, Any]) -> dict[str, int]:
    """``{"imgsz": size}`` when params give a valid one, ``{}`` when they give none."""
    if "imgsz" not in params:
        return {}
    size = params["imgsz"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 32:
        raise ValueError(
            f"prune parameter 'imgsz' must be a positive multiple of 32 (the models' largest "
            f"stride), got {size!r}"
        )
    return {"imgsz": size}


def _by_group(
    model: Any, example: Any, protected: list[Any], params: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    """Criterion ``group``: torch-pruning's pruner over coupled groups; the ratio achieved
    and what the record says of it."""
    import torch_pruning as tp

    base, importance_cfg = _importance(params["importance"])
    pruner_class = tp.pruner.BNScalePruner if params["importance"] == "bn_scale" else tp.pruner.MetaPruner
    pruner = pruner_class(
        model,
        example,
        importance=TieBreak(base),
        global_pruning=params["global"],
        pruning_ratio=params["ratio"],
        max_pruning_ratio=MAX_PRUNING_RATIO,
        ignored_layers=protected,
    )
    channels_before = group_channels(pruner)
    pruner.step()
    channels_after = group_channels(pruner)
    achieved = 1 - channels_after / channels_before if channels_before else 0.0
    return achieved, {
        "ratio_tolerance": RATIO_TOLERANCE,
        "ratio_within_tolerance": abs(achieved - params["ratio"]) <= RATIO_TOLERANCE,
        "importance": params["importance"],
        "importance_config": importance_cfg,
        "global": params["global"],
        "max_pruning_ratio": MAX_PRUNING_RATIO,
        "tie_break": f"seeded relative jitter {TIE_JITTER:g} (orders exactly equal importances only)",
        "channels_before": channels_before,
        "channels_after": channels_after,
    }


def _by_threshold(model: Any, example: Any, part: Any, ratio: float) -> tuple[float, dict[str, Any]]:
    """Criterion ``bn_threshold`` (``bn_threshold``): the ratio achieved over the candidate BN
    channels and what the record says of it (the threshold, the channels left per layer)."""
    from greenbench.pipeline import bn_threshold

    bns = bn_threshold.candidates(model, part.protected, part.residual)
    try:
        limit = bn_threshold.threshold(bns, ratio)
    except ValueError as e:
        raise GreenbenchError(f"prune criterion bn_threshold: {e}; use criterion group") from None
    coupled = bn_threshold.prune(model, example, bns, limit.value)
    left = {name: bn.num_features for name, bn in bns.items()}
    channels_after = sum(left.values())
    achieved = 1 - channels_after / limit.channels
    return achieved, {
        "threshold_abs_gamma": limit.value,
        "threshold_at_ratio": limit.quantile,
        "threshold_cap": limit.cap,
        "threshold_capped": limit.value < limit.quantile,
        "channels_before": limit.channels,
        "channels_after": channels_after,
        "channels_per_layer": {name: [limit.layers[name][0], n] for name, n in left.items()},
        "layers_kept_whole_coupled": coupled,
        "residual_bns_kept": len(part.residual),
        "residual_bns_what": part.residual_what,
    }


class PruneStage:
    """Remove the least important fraction ``ratio`` of channels (torch-pruning; the layers
    the task protects keep their outputs).

    Params: ``ratio`` (required, 0 < r < 1), ``criterion`` (``group`` default: torch-pruning's
    coupled groups ranked by ``importance``; ``bn_threshold``: the global |γ| threshold over BN
    channels, residual BNs kept), and for ``group``: ``importance`` (``bn_scale`` default, ``l1``,
    ``l2``, ``random``), ``global`` (default true: one threshold over the network; false:
    ``ratio`` in each layer), ``imgsz`` (the example input's size; default the suite's).
    """

    name: ClassVar[str] = "prune"
    variant_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def validate_params(cls, params: dict[str, Any], task: type[Task] | None = None) -> dict[str, Any]:
        """Check every key; fill in the defaults (so equal prunings share one cache key)."""
        for key in params:
            if key not in PARAMS:
                raise ValueError(f"unknown prune parameter {key!r}; expected one of {', '.join(PARAMS)}")
        ratio = params.get("ratio")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
            raise ValueError(f"prune parameter 'ratio' must be a number with 0 < ratio < 1, got {ratio!r}")
        criterion = params.get("criterion", "group")
        if criterion not in CRITERIA:
            raise ValueError(
                f"prune parameter 'criterion' must be one of {', '.join(CRITERIA)}, got {criterion!r}"
            )
        if criterion == "bn_threshold":
            for key in ("importance", "global"):
                if key in params:
                    raise ValueError(
                        f"prune parameter {key!r} applies to criterion group only; bn_threshold ranks "
                        f"BN channels by |γ| with one global threshold. Remove {key!r}"
                    )
            out_bn: dict[str, Any] = {"ratio": float(ratio), "criterion": criterion}
            return {**out_bn, **_imgsz(params)}
        importance = params.get("importance", "bn_scale")
        if importance not in IMPORTANCES:
            raise ValueError(
                f"prune parameter 'importance' must be one of {', '.join(IMPORTANCES)}, got {importance!r}"
            )
        glob = params.get("global", True)
        if not isinstance(glob, bool):
            raise ValueError(f"prune parameter 'global' must be true or false, got {glob!r}")
        # criterion group is left out: the cache keys of suites written before it stay as they were
        return {"ratio": float(ratio), "importance": importance, "global": glob, **_imgsz(params)}

    def run(self, ctx: StageContext) -> StageResult:
        """Prune what the task hands over (the parent, from its fp32 copy when it has one) and
        save the pruned module the task's way."""
        import torch

        params = self.validate_params(ctx.params)
        imgsz = int(params.get("imgsz", ctx.defaults.get("imgsz", DEFAULT_IMGSZ)))
        try:
            part = ctx.task.prunable(ctx.start_model(), ctx.input)
        except GreenbenchError as e:
            raise GreenbenchError(f"prune ({ctx.variant or ctx.out_dir}): {e}") from None
        model, protected = part.module, part.protected
        for p in model.parameters():  # loaded checkpoints have requires_grad off: tracing needs it
            p.requires_grad_(True)
        model.eval()  # the example forward must not move BN running statistics
        window = ctx.meter.begin()
        criterion = params.get("criterion", "group")
        what = params.get("importance", "") if criterion == "group" else criterion
        ctx.emit(f"prune {what} ratio {params['ratio']}")
        before = _counts(model, protected, imgsz)
        shapes_before = protected_shapes(protected)
        example = torch.zeros(1, 3, imgsz, imgsz)
        if criterion == "bn_threshold":
            achieved, details = _by_threshold(model, example, part, params["ratio"])
        else:
            achieved, details = _by_group(model, example, protected, params)
        after = _counts(model, protected, imgsz)  # also proves the pruned graph still runs
        if protected_shapes(protected) != shapes_before:
            raise GreenbenchError(
                f"prune ({ctx.variant or ctx.out_dir}): the outputs of the protected layers changed "
                f"({part.protected_what})"
            )
        checkpoint = part.save(model, ctx.out_dir / "weights" / "pruned.pt")
        energy = ctx.meter.end(window)
        info = {
            "criterion": criterion,
            "ratio_asked": params["ratio"],
            "ratio_achieved": achieved,
            "ratio_basis": RATIO_BASIS[criterion],
            **details,
            "ignored": part.protected_what,
            "imgsz": imgsz,
            "weights_from": part.weights_from,
            "bn_channels_before": before["bn"],
            "bn_channels_after": after["bn"],
            "params_before": before["params"],
            "params_after": after["params"],
            "gmacs_before": before["gmacs"],
            "gmacs_after": after["gmacs"],
            "gflops_before": before["gflops"],
            "gflops_after": after["gflops"],
            "saved_precision": part.saved_as,
        }
        return StageResult(checkpoint, energy, info)
