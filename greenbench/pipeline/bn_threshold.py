"""Prune criterion ``bn_threshold``: network slimming's global |γ| threshold over BN channels.

As the YOLOv5 study's authors prune: the |γ| of every candidate BN channel (outside the
protected layers and the residual-path BNs the task names) are sorted, the threshold is the
value at ``ratio`` of them, and each candidate BN keeps its channels with |γ| ≥ threshold.
The threshold is capped at the smallest per-layer maximum |γ|, so no layer loses all its
channels (the authors print that bound and stop if a layer would be emptied). torch-pruning's
dependency graph then removes each layer's channels for real (the conv before the BN, the BN,
the input channels of whatever reads them). A BN whose channels are coupled to another BN's
(a residual add or a depthwise conv ties them) keeps all its channels: removing them would
follow another layer's γ, not its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Threshold:
    """The global threshold and what it keeps: ``quantile`` (|γ| at ``ratio`` of the sorted
    channels), ``cap`` (the smallest per-layer maximum |γ|), ``value`` (the one applied: the
    smaller of the two), and per BN layer name (channels before, channels kept)."""

    quantile: float
    cap: float
    value: float
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        """Candidate BN channels."""
        return sum(before for before, _ in self.layers.values())

    @property
    def kept(self) -> int:
        """Candidate BN channels the threshold keeps."""
        return sum(kept for _, kept in self.layers.values())


def candidates(model: Any, protected: list[Any], residual: list[Any]) -> dict[str, Any]:
    """BN layers by name, outside ``protected`` and not in ``residual``."""
    from torch import nn

    skip = {id(m) for layer in protected for m in layer.modules()} | {id(m) for m in residual}
    return {
        name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and id(m) not in skip
    }


def threshold(bns: dict[str, Any], ratio: float) -> Threshold:
    """The authors' threshold for ``ratio`` over the |γ| of ``bns``, capped so that every layer
    keeps at least its largest-|γ| channel."""
    import torch

    if not bns:
        raise ValueError("no BatchNorm layers to prune by their γ")
    gammas = {name: bn.weight.detach().abs().double().flatten() for name, bn in bns.items()}
    ordered = torch.sort(torch.cat(list(gammas.values()))).values
    quantile = float(ordered[min(int(len(ordered) * ratio), len(ordered) - 1)])
    cap = min(float(g.max()) for g in gammas.values())
    value = min(quantile, cap)
    layers = {name: (len(g), int((g >= value).sum())) for name, g in gammas.items()}
    return Threshold(quantile, cap, value, layers)


def _producer(dg: Any, bn: Any) -> Any:
    """The conv whose output channels ``bn`` normalises, or None."""
    from torch import nn

    node = dg.module2node.get(bn)
    convs = [n.module for n in (node.inputs if node else []) if isinstance(n.module, nn.Conv2d)]
    return convs[0] if len(convs) == 1 and convs[0].out_channels == bn.num_features else None


def prune(model: Any, example: Any, bns: dict[str, Any], value: float) -> list[str]:
    """Remove from ``model`` every channel of ``bns`` with |γ| < ``value`` (torch-pruning
    rewires the graph); return the names of the BN layers kept whole because their channels
    are coupled to another BN or have no conv of their own before them."""
    import torch
    import torch_pruning as tp
    from torch import nn

    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    coupled: list[str] = []
    for name, bn in bns.items():
        drop = torch.nonzero(bn.weight.detach().abs().double() < value).flatten().tolist()
        if not drop:
            continue
        conv = _producer(dg, bn)
        group = None if conv is None else dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=drop)
        others = (
            [d.target.module for d, _ in group if isinstance(d.target.module, nn.BatchNorm2d)]
            if group is not None
            else []
        )
        if group is None or any(m is not bn for m in others) or not dg.check_pruning_group(group):
            coupled.append(name)
            continue
        group.prune()
    return coupled
