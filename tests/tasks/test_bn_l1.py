"""The BN L1 penalty of sparse training on a toy model of real ultralytics blocks, against
gradients and soft thresholds computed by hand."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from greenbench.tasks.detect.bn_l1 import (
    L1Penalty,
    add_subgradient,
    param_lrs,
    penalised_bns,
    proximal_step,
    residual_bns,
    soft_threshold_,
)


def _toy() -> nn.Module:
    """Conv, a C3 with a shortcut bottleneck (residual), a C3 without (as in YOLOv5's neck); 4
    channels in every BN."""
    from ultralytics.nn.modules.block import C3
    from ultralytics.nn.modules.conv import Conv

    torch.manual_seed(0)
    return nn.Sequential(Conv(3, 4, 3, 2), C3(4, 4, 1, True, e=1.0), C3(4, 4, 1, False, e=1.0))


def _bn_names(model: nn.Module, bns: list[Any]) -> set[str]:
    names = {id(m): name for name, m in model.named_modules()}
    return {names[id(bn)] for bn in bns}


def _all_bns(model: nn.Module) -> list[Any]:
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def _set(bn: Any, gamma: list[float], beta: list[float]) -> None:
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    bn.weight.grad = torch.zeros_like(bn.weight)
    bn.bias.grad = torch.zeros_like(bn.bias)


def test_linear_decay_is_the_authors_schedule() -> None:
    decay = L1Penalty(lam=1e-3, schedule="linear_decay", beta_l1=10)
    assert decay.lambda_at(0, 50) == pytest.approx(1e-3)
    assert decay.lambda_at(25, 50) == pytest.approx(1e-3 * (1 - 0.9 * 0.5))
    assert decay.lambda_at(49, 50) == pytest.approx(1e-3 * (1 - 0.9 * 49 / 50))
    assert decay.beta_lambda == pytest.approx(1e-2)  # 10·λ, not decayed
    assert L1Penalty(lam=1e-3).lambda_at(49, 50) == 1e-3  # constant


def test_residual_bns_are_the_shortcut_blocks_and_their_input_conv() -> None:
    model = _toy()
    assert _bn_names(model, residual_bns(model)) == {"1.cv1.bn", "1.m.0.cv1.bn", "1.m.0.cv2.bn"}
    kept = penalised_bns(_all_bns(model), model, "non_residual")
    assert _bn_names(model, kept) == {"0.bn", "1.cv2.bn", "1.cv3.bn", "2.cv1.bn", "2.cv2.bn",
                                      "2.cv3.bn", "2.m.0.cv1.bn", "2.m.0.cv2.bn"}  # fmt: skip
    assert len(penalised_bns(_all_bns(model), model, "all")) == len(_all_bns(model)) == 11


@pytest.mark.parametrize("times", [1, 4])
def test_subgradient_on_gamma_and_beta_leaves_residual_bns_alone(times: int) -> None:
    model = _toy()
    for bn in _all_bns(model):
        _set(bn, [0.5, -0.2, 0.0, 3.0], [-1.0, 0.25, 0.0, -0.1])
    penalty = L1Penalty(lam=2e-3, schedule="linear_decay", beta_l1=10, bn="non_residual")
    lam = penalty.lambda_at(10, 40)  # 2e-3 · (1 − 0.9 · 0.25) = 1.55e-3
    assert lam == pytest.approx(1.55e-3)
    add_subgradient(penalised_bns(_all_bns(model), model, penalty.bn), lam, penalty.beta_lambda, times)
    residual = {id(bn) for bn in residual_bns(model)}
    for bn in _all_bns(model):
        if id(bn) in residual:
            assert torch.count_nonzero(bn.weight.grad) == 0 and torch.count_nonzero(bn.bias.grad) == 0
        else:  # sign(γ) = [1, -1, 0, 1], sign(β) = [-1, 1, 0, -1]
            assert bn.weight.grad.tolist() == pytest.approx(
                [times * 1.55e-3, -times * 1.55e-3, 0, times * 1.55e-3]
            )
            assert bn.bias.grad.tolist() == pytest.approx([-times * 2e-2, times * 2e-2, 0, -times * 2e-2])


def test_subgradient_then_sgd_moves_gamma_by_lr_times_lambda() -> None:
    """The penalty as network slimming applies it: with no loss gradient, one SGD step moves
    each γ by lr·λ towards 0 (and β by lr·10λ)."""
    model = _toy()
    bn = next(iter(_all_bns(model)))
    _set(bn, [0.5, -0.2, 0.3, 1.0], [0.1, -0.1, 0.2, 0.0])
    optimizer = torch.optim.SGD([bn.weight, bn.bias], lr=0.1, momentum=0.0)
    add_subgradient([bn], 1e-2, 1e-1)
    optimizer.step()
    assert bn.weight.tolist() == pytest.approx([0.499, -0.199, 0.299, 0.999])
    assert bn.bias.tolist() == pytest.approx([0.09, -0.09, 0.19, 0.0])


def test_soft_threshold_by_hand() -> None:
    t = torch.tensor([0.5, -0.2, 0.003, -0.001, 0.0])
    soft_threshold_(t, 0.002)
    assert t.tolist() == pytest.approx([0.498, -0.198, 0.001, 0.0, 0.0])


def test_proximal_step_uses_each_parameters_own_learning_rate() -> None:
    """γ in a group at lr 0.1, β in one at lr 0.5 (as ultralytics groups BN weights and biases):
    γ shrinks by 0.1·λ·times, β by 0.5·10λ·times, and values inside the band become 0."""
    model = _toy()
    bn = next(iter(_all_bns(model)))
    _set(bn, [0.5, -0.2, 0.003, -0.001], [0.5, -0.5, 0.02, 0.0])
    optimizer = torch.optim.Adam([{"params": [bn.weight], "lr": 0.1}, {"params": [bn.bias], "lr": 0.5}])
    lrs = param_lrs(optimizer)
    assert lrs[id(bn.weight)] == 0.1 and lrs[id(bn.bias)] == 0.5
    proximal_step([bn], lrs, lam_gamma=1e-2, lam_beta=1e-3, times=2)  # γ by 0.002, β by 0.001
    assert bn.weight.tolist() == pytest.approx([0.498, -0.198, 0.001, 0.0])
    assert bn.bias.tolist() == pytest.approx([0.499, -0.499, 0.019, 0.0])


def test_proximal_step_leaves_parameters_the_optimizer_does_not_hold() -> None:
    model = _toy()
    bns = _all_bns(model)
    _set(bns[0], [0.5, -0.2, 0.3, 1.0], [0.1, -0.1, 0.2, 0.0])
    _set(bns[1], [0.5, -0.2, 0.3, 1.0], [0.1, -0.1, 0.2, 0.0])
    optimizer = torch.optim.SGD([bns[0].weight], lr=0.1)
    proximal_step(bns[:2], param_lrs(optimizer), lam_gamma=1.0, lam_beta=1.0)
    assert bns[0].weight.tolist() == pytest.approx([0.4, -0.1, 0.2, 0.9])
    assert bns[0].bias.tolist() == pytest.approx([0.1, -0.1, 0.2, 0.0])  # not in the optimizer
    assert bns[1].weight.tolist() == pytest.approx([0.5, -0.2, 0.3, 1.0])
