"""The BN L1 penalty of sparse training (network slimming), as plain tensor operations.

λ·Σ|γ| (+ β_l1·λ·Σ|β|) enters training in one of two ways:

- ``subgradient``: λ·sign(γ) (and β_l1·λ·sign(β)) is added to the gradients before the
  optimizer step, as network slimming and the YOLOv5 study's authors do. Under SGD that moves
  γ by lr·λ per step; Adam-family optimizers divide the gradient by its running RMS, so there
  λ sets a direction more than a shrinkage rate.
- ``proximal``: after the optimizer step, γ is soft-thresholded by lr·λ
  (γ ← sign(γ)·max(|γ| − lr·λ, 0)): the proximal step of the L1 term, which shrinks γ by
  lr·λ whatever the optimizer does with the loss gradient.

``every``: ``optimizer_step`` applies the penalty once per optimizer step; ``batch`` once per
batch (the authors step the optimizer after every batch): with ultralytics accumulating
``k`` batches per step, the step then carries k times the penalty, computed at the weights
of that step (they do not change between the accumulated batches).

``lambda_schedule``: ``constant``, or the authors' ``linear_decay``
λ_epoch = λ·(1 − 0.9·epoch/epochs), epoch counted from 0. The β term keeps the base λ (the
authors do not decay it).

Which BNs: ``all`` (every BN outside the Detect head) or ``non_residual``: without the BNs on
a residual path, as the authors' ``ignore_bn_list``: for every bottleneck that adds its input
to its output, its two convs' BNs and the first conv's BN of the block that holds it (whose
output the shortcut chain carries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SCHEDULES = ("constant", "linear_decay")
PENALTIES = ("subgradient", "proximal")
EVERY = ("optimizer_step", "batch")
BN_SETS = ("all", "non_residual")
#: the authors' decay: λ·(1 − 0.9·epoch/epochs), so the last epoch has just over 0.1·λ
LINEAR_DECAY = 0.9


@dataclass(frozen=True)
class L1Penalty:
    """What sparse training adds: ``lam`` (λ, per application), its schedule, the β factor
    (``beta_l1``: 0 for none; the authors use 10), which BNs, how and how often."""

    lam: float
    schedule: str = "constant"
    beta_l1: float = 0.0
    bn: str = "all"
    penalty: str = "subgradient"
    every: str = "optimizer_step"

    def lambda_at(self, epoch: int, epochs: int) -> float:
        """λ for γ in ``epoch`` (0-based) of ``epochs``."""
        if self.schedule == "linear_decay" and epochs > 0:
            return self.lam * (1 - LINEAR_DECAY * epoch / epochs)
        return self.lam

    @property
    def beta_lambda(self) -> float:
        """The L1 weight on β (BN bias): ``beta_l1``·λ, not decayed."""
        return self.beta_l1 * self.lam


def residual_bns(model: Any) -> list[Any]:
    """The BNs on residual paths: for each bottleneck with a shortcut (``add`` true), its
    ``cv1`` and ``cv2`` BNs and the ``cv1`` BN of the block that holds it."""
    modules = dict(model.named_modules())
    found: dict[int, Any] = {}
    for name, m in modules.items():
        if getattr(m, "add", False) is not True or not hasattr(m, "cv1") or not hasattr(m, "cv2"):
            continue
        owner = modules.get(name.rsplit(".", 2)[0]) if name.count(".") >= 2 else None
        for conv in (m.cv1, m.cv2, getattr(owner, "cv1", None)):
            bn = getattr(conv, "bn", None)
            if bn is not None:
                found[id(bn)] = bn
    return list(found.values())


def penalised_bns(candidates: Iterable[Any], model: Any, bn: str) -> list[Any]:
    """``candidates`` (the BNs outside the head) less the residual ones when ``bn`` is
    ``non_residual``."""
    if bn == "all":
        return list(candidates)
    skip = {id(m) for m in residual_bns(model)}
    return [m for m in candidates if id(m) not in skip]


def add_subgradient(bns: Iterable[Any], lam_gamma: float, lam_beta: float, times: int = 1) -> None:
    """Add ``times``·λ·sign(γ) to each γ gradient and ``times``·λ_β·sign(β) to each β gradient."""
    import torch

    with torch.no_grad():
        for bn in bns:
            if bn.weight.grad is not None and lam_gamma:
                bn.weight.grad.add_(torch.sign(bn.weight), alpha=lam_gamma * times)
            if lam_beta and bn.bias is not None and bn.bias.grad is not None:
                bn.bias.grad.add_(torch.sign(bn.bias), alpha=lam_beta * times)


def soft_threshold_(tensor: Any, amount: float) -> None:
    """In place: ``tensor`` ← sign(tensor)·max(|tensor| − amount, 0)."""
    import torch

    with torch.no_grad():
        tensor.copy_(torch.sign(tensor) * torch.clamp(tensor.abs() - amount, min=0))


def param_lrs(optimizer: Any) -> dict[int, float]:
    """The current learning rate of every parameter the optimizer holds (by ``id``)."""
    return {id(p): float(g["lr"]) for g in optimizer.param_groups for p in g["params"]}


def proximal_step(
    bns: Iterable[Any], lrs: dict[int, float], lam_gamma: float, lam_beta: float, times: int = 1
) -> None:
    """Soft-threshold each γ by lr·``times``·λ and each β by lr·``times``·λ_β, lr being the
    parameter's own learning rate in ``lrs`` (parameters the optimizer does not hold stay)."""
    for bn in bns:
        lr = lrs.get(id(bn.weight))
        if lr is not None and lam_gamma:
            soft_threshold_(bn.weight, lr * lam_gamma * times)
        lr = lrs.get(id(bn.bias)) if bn.bias is not None else None
        if lr is not None and lam_beta:
            soft_threshold_(bn.bias, lr * lam_beta * times)
