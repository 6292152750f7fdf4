"""Prune criterion ``bn_threshold`` on known γ: exactly the expected channels go, no layer is
emptied, residual BNs stay whole; torch-pruning rewires a toy model of real ultralytics blocks."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from greenbench.pipeline import bn_threshold
from greenbench.pipeline.prune import PruneStage
from greenbench.tasks.detect.bn_l1 import residual_bns

#: γ of the candidate BNs, by layer: 19 channels, all distinct
GAMMAS = {
    "0.bn": [0.1, 0.2, 0.3, 0.4],
    "1.bn": [0.05, 0.5, 0.6, 0.7, 0.8, 0.9],
    "2.cv2.bn": [0.15, 0.55, 0.65],
    "2.cv3.bn": [0.12, 0.25, 0.35, 0.45, 0.75, 0.85],
}


def _toy() -> tuple[nn.Module, list[Any]]:
    """Conv 3→4, Conv 4→6, a C3 6→6 with a shortcut bottleneck, a protected Conv 6→2 (a head);
    the candidate BNs' γ set to ``GAMMAS``, the others (residual, head) to 0.01."""
    from ultralytics.nn.modules.block import C3
    from ultralytics.nn.modules.conv import Conv

    torch.manual_seed(0)
    model = nn.Sequential(Conv(3, 4, 3, 1), Conv(4, 6, 3, 1), C3(6, 6, 1, True), Conv(6, 2, 1, 1)).eval()
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(
                    torch.tensor(GAMMAS[name]) if name in GAMMAS else torch.full_like(m.weight, 0.01)
                )
    return model, [model[3]]


def _candidates(model: nn.Module, protected: list[Any]) -> dict[str, Any]:
    return bn_threshold.candidates(model, protected, residual_bns(model))


def test_candidates_leave_out_the_residual_and_protected_bns() -> None:
    model, protected = _toy()
    assert set(_candidates(model, protected)) == set(GAMMAS)


def test_threshold_at_the_ratio_prunes_exactly_the_channels_below_it() -> None:
    """Sorted, the 19 γ are 0.05 0.1 0.12 0.15 0.2 …: ratio 0.25 puts the threshold at index
    int(19·0.25) = 4, γ 0.2 (below the cap, min of the layer maxima 0.4): the four γ below it
    go, one per layer."""
    model, protected = _toy()
    bns = _candidates(model, protected)
    limit = bn_threshold.threshold(bns, 0.25)
    assert limit.quantile == pytest.approx(0.2) and limit.cap == pytest.approx(0.4)
    assert limit.value == pytest.approx(0.2)
    assert limit.layers == {"0.bn": (4, 3), "1.bn": (6, 5), "2.cv2.bn": (3, 2), "2.cv3.bn": (6, 5)}
    before = {name: m.weight.detach().clone() for name, m in model.named_modules() if name.endswith("bn")}
    coupled = bn_threshold.prune(model, torch.zeros(1, 3, 32, 32), bns, limit.value)
    assert coupled == []
    for name, bn in bns.items():  # the kept γ, in order: exactly those ≥ the threshold
        assert bn.weight.tolist() == pytest.approx([g for g in GAMMAS[name] if g >= 0.2 - 1e-7])
    for name, m in model.named_modules():  # residual and head BNs: every channel, untouched
        if isinstance(m, nn.BatchNorm2d) and name not in GAMMAS:
            assert torch.equal(m.weight.detach(), before[name])
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)  # rewired: it still runs


def test_the_cap_never_empties_a_layer() -> None:
    """Ratio 0.6 would put the threshold at γ 0.55 (index 11), above every γ of layer 0.bn
    (max 0.4): capped at 0.4, that layer keeps its largest channel."""
    model, protected = _toy()
    bns = _candidates(model, protected)
    limit = bn_threshold.threshold(bns, 0.6)
    assert limit.quantile == pytest.approx(0.55) and limit.value == pytest.approx(0.4)
    assert limit.layers == {"0.bn": (4, 1), "1.bn": (6, 5), "2.cv2.bn": (3, 2), "2.cv3.bn": (6, 3)}
    bn_threshold.prune(model, torch.zeros(1, 3, 32, 32), bns, limit.value)
    assert bns["0.bn"].weight.tolist() == pytest.approx([0.4])
    assert all(bn.num_features >= 1 for bn in bns.values())


def test_a_bn_coupled_to_another_is_kept_whole() -> None:
    """Two convs whose outputs are added: their BNs share channels, so neither follows its own γ."""
    from ultralytics.nn.modules.conv import Conv

    class Add(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.out = Conv(3, 4, 1, 1), Conv(3, 4, 1, 1), Conv(4, 2, 1, 1)

        def forward(self, x: Any) -> Any:
            return self.out(self.a(x) + self.b(x))

    model = Add().eval()
    with torch.no_grad():
        model.a.bn.weight.copy_(torch.tensor([0.1, 0.9, 0.8, 0.7]))
        model.b.bn.weight.copy_(torch.tensor([0.6, 0.5, 0.05, 0.4]))
    bns = bn_threshold.candidates(model, [model.out], [])
    coupled = bn_threshold.prune(model, torch.zeros(1, 3, 8, 8), bns, 0.3)
    assert coupled == ["a.bn", "b.bn"] and model.a.bn.num_features == model.b.bn.num_features == 4


def test_no_bn_at_all_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no BatchNorm"):
        bn_threshold.threshold({}, 0.3)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"ratio": 0.3, "criterion": "l1"}, "criterion"),
        ({"ratio": 0.3, "criterion": "bn_threshold", "importance": "l1"}, "importance"),
        ({"ratio": 0.3, "criterion": "bn_threshold", "global": False}, "global"),
        ({"ratio": 0.3, "criterion": "bn_threshold", "imgsz": 33}, "imgsz"),
    ],
)
def test_bad_criterion_params_name_the_key(params: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=f"'{key}'"):
        PruneStage.validate_params(params)


def test_criterion_group_is_the_default_and_left_out_of_the_params() -> None:
    """Suites written before the criterion keep their cache keys: group is not in the params."""
    group = PruneStage.validate_params({"ratio": 0.3, "criterion": "group"})
    assert (
        group
        == PruneStage.validate_params({"ratio": 0.3})
        == {
            "ratio": 0.3,
            "importance": "bn_scale",
            "global": True,
        }
    )
    assert PruneStage.validate_params({"ratio": 0.3, "criterion": "bn_threshold", "imgsz": 64}) == {
        "ratio": 0.3,
        "criterion": "bn_threshold",
        "imgsz": 64,
    }
