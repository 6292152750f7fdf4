"""The layers a low-rank factorisation makes (``greenbench.tasks.classify.lowrank``): each
knows its constructor arguments, so checkpoints rebuild them without pickles."""

from __future__ import annotations

from typing import Any

from torch import nn


class LowRankLinear(nn.Sequential):
    """``Linear(in, rank, bias=False)`` then ``Linear(rank, out)``."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__(nn.Linear(in_features, rank, bias=False), nn.Linear(rank, out_features, bias=bias))

    def spec(self) -> dict[str, Any]:
        """Constructor arguments, for a checkpoint's structure."""
        a, b = self[0], self[1]
        return {"type": "lowrank_linear", "in": a.in_features, "out": b.out_features,
                "rank": a.out_features, "bias": b.bias is not None}  # fmt: skip

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LowRankLinear:
        """Back from ``spec``."""
        return cls(spec["in"], spec["out"], spec["rank"], spec["bias"])


class LowRankConv2d(nn.Sequential):
    """A ``k×k`` conv to ``rank`` channels (the layer's stride, padding, dilation), then a 1×1 conv."""

    def __init__(self, conv: dict[str, Any], rank: int) -> None:
        pad = conv["padding"] if isinstance(conv["padding"], str) else tuple(conv["padding"])
        first = nn.Conv2d(conv["in"], rank, tuple(conv["k"]), tuple(conv["stride"]), pad,
                          tuple(conv["dilation"]), bias=False)  # fmt: skip
        super().__init__(first, nn.Conv2d(rank, conv["out"], 1, bias=conv["bias"]))
        self._conv = dict(conv)

    def spec(self) -> dict[str, Any]:
        """Constructor arguments, for a checkpoint's structure."""
        return {"type": "lowrank_conv2d", "conv": self._conv, "rank": self[0].out_channels}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LowRankConv2d:
        """Back from ``spec``."""
        return cls(spec["conv"], spec["rank"])
