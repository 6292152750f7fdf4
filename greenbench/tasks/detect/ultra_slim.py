"""Network slimming on ultralytics YOLO: the trainers and weight files its stages need.

- ``sparse_trainer(penalty)``: a ``DetectionTrainer`` that applies the BN L1 penalty of
  ``bn_l1`` (a subgradient before, or a proximal step after, each optimizer step) to the
  ``BatchNorm2d`` layers outside the ``Detect`` head.
- ``module_trainer(module)``: a ``DetectionTrainer`` that trains the module it is given. The
  stock trainer rebuilds the model from its YAML and copies the weights that fit ("Transferred
  146/427 items"), which silently undoes a pruning.
- fp32 copies: ultralytics stores the EMA in fp16, where BN γ take a few hundred distinct
  values and a global threshold over-prunes through ties. ``add_fp32_copy`` saves the EMA's
  state_dict in fp32 beside each checkpoint (``best.pt`` → ``best_fp32.pt``), and
  ``load_fp32_copy`` puts it back into a loaded model.

Nothing here imports ultralytics at module level: the adapter must configure it first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect.bn_l1 import L1Penalty

#: what an fp32 copy file holds (a plain state_dict: it loads with ``weights_only=True``)
FP32_FORMAT = "greenbench-fp32-state-dict/1"


def fp32_path(checkpoint: Path) -> Path:
    """Where the fp32 copy of ``checkpoint`` lives: ``best.pt`` → ``best_fp32.pt``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}_fp32.pt")


def detect_heads(model: Any) -> list[Any]:
    """The ``Detect`` modules (and subclasses) of ``model``."""
    from ultralytics.nn.modules.head import Detect

    return [m for m in model.modules() if isinstance(m, Detect)]


def backbone_bns(model: Any) -> Iterator[Any]:
    """Every ``BatchNorm2d`` of ``model`` outside its ``Detect`` head(s)."""
    from torch import nn

    inside = {id(m) for head in detect_heads(model) for m in head.modules()}
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and id(m) not in inside:
            yield m


def mean_abs_gamma(model: Any) -> float:
    """Mean |γ| over the BN channels outside the Detect head (what sparse training lowers)."""
    import torch

    gammas = [bn.weight.detach().abs().float().flatten() for bn in backbone_bns(model)]
    return float(torch.cat(gammas).mean()) if gammas else float("nan")


def bn_channels(model: Any) -> int:
    """Number of BN channels (γ) outside the Detect head."""
    return int(sum(bn.num_features for bn in backbone_bns(model)))


def _fp32_state(module: Any) -> dict[str, Any]:
    return {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).cpu().clone()
        for k, v in module.state_dict().items()
    }


def save_fp32_copy(module: Any, checkpoint: Path) -> Path:
    """Write ``module``'s state_dict in fp32 as the fp32 copy of ``checkpoint``; return its path."""
    import torch

    target = fp32_path(checkpoint)
    tmp = target.with_suffix(".tmp")  # atomic: a half-written copy would be loaded as stale
    torch.save({"format": FP32_FORMAT, "state_dict": _fp32_state(module)}, tmp)
    tmp.replace(target)
    return target


def add_fp32_copy(yolo: Any) -> None:
    """Make ``yolo.train()`` save the EMA in fp32 beside ``last.pt`` and ``best.pt``.

    Runs after each ``save_model``, with ultralytics' own condition for writing ``best.pt``
    (``best_fitness == fitness``), so ``best_fp32.pt`` holds the weights of ``best.pt``.
    """
    import shutil

    def on_model_save(trainer: Any) -> None:
        if getattr(trainer, "ema", None) is None:
            return
        last = save_fp32_copy(trainer.ema.ema, Path(trainer.last))
        if trainer.best_fitness == trainer.fitness:
            shutil.copyfile(last, fp32_path(Path(trainer.best)))

    yolo.add_callback("on_model_save", on_model_save)


def load_fp32_copy(model: Any, checkpoint: Path) -> Path | None:
    """Load the fp32 copy of ``checkpoint`` into ``model`` (in place) if there is one; return
    its path, or None when ``checkpoint`` has no fp32 copy (its stored weights stay)."""
    import torch

    path = fp32_path(checkpoint)
    if not path.is_file():
        return None
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FP32_FORMAT:
        raise GreenbenchError(f"{path} is not an fp32 copy greenbench wrote; delete it and rerun the stage.")
    try:
        model.float().load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as e:
        raise GreenbenchError(
            f"the fp32 copy {path} does not fit the model in {checkpoint} ({str(e).splitlines()[0]}). "
            f"One of them was replaced by hand: delete the stage's folder {path.parent.parent} and rerun."
        ) from None
    return path


def save_module(model: Any, path: Path, train_args: dict[str, Any]) -> Path:
    """Save a (pruned) ``DetectionModel`` so that ``YOLO(path)`` loads it with its own shapes.

    The module is pickled whole in fp16, like ultralytics' checkpoints (so ``size_mb`` compares
    with theirs), and its fp32 state_dict is saved beside it (``save_fp32_copy``). A state_dict
    alone would not do: ultralytics rebuilds the unpruned model from ``model.yaml``. The pickle
    is greenbench's own file; it is never read back from outside without ``allow_pickle``.
    """
    import copy

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    half = copy.deepcopy(model).half()
    for p in half.parameters():
        p.requires_grad_(False)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": half, "train_args": dict(train_args)}, tmp)
    tmp.replace(path)
    save_fp32_copy(model, path)
    return path


def sparse_trainer(penalty: L1Penalty) -> type[Any]:
    """A ``DetectionTrainer`` class applying ``penalty`` (``bn_l1``) to the BNs outside the
    Detect head (less the residual ones for ``bn: non_residual``).

    A subgradient is added by a pre-step hook on the optimizer, i.e. inside
    ``scaler.step(optimizer)``: after ultralytics' ``unscale_`` and gradient clipping (so λ is
    neither scaled by AMP nor clipped away), and skipped with the step when AMP finds inf
    gradients. A proximal step runs in a post-step hook, before the EMA update. With ``every:
    batch`` the step carries one penalty per batch accumulated since the last step (counted by
    ``on_train_batch_start``). ``l1_steps`` and ``l1_batches`` count what it was applied to;
    ``l1_lambda_last`` is λ for γ at the last step.
    """
    import torch
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import unwrap_model

    from greenbench.tasks.detect.bn_l1 import add_subgradient, param_lrs, penalised_bns, proximal_step

    class SparseTrainer(DetectionTrainer):  # type: ignore[misc]
        l1: L1Penalty = penalty
        l1_steps: int = 0
        l1_batches: int = 0
        l1_bn_count: int = 0
        l1_lambda_last: float = float("nan")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._l1_pending = 0
            self._l1_bns: list[Any] | None = None
            self.add_callback("on_train_batch_start", SparseTrainer._count_batch)

        def _count_batch(self) -> None:
            self._l1_pending += 1

        def _bns(self) -> list[Any]:
            if self._l1_bns is None:
                trained: Any = self.model  # a module by now (ultralytics types it str | Path | Module)
                model = unwrap_model(trained)
                self._l1_bns = penalised_bns(backbone_bns(model), model, self.l1.bn)
                self.l1_bn_count = len(self._l1_bns)
            return self._l1_bns

        def _weights(self) -> tuple[float, float, int]:
            times = max(self._l1_pending, 1) if self.l1.every == "batch" else 1
            return self.l1.lambda_at(self.epoch, self.epochs), self.l1.beta_lambda, times

        def _pre_step(self, *_args: Any) -> None:
            lam, lam_beta, times = self._weights()
            if self.l1.penalty == "subgradient":
                add_subgradient(self._bns(), lam, lam_beta, times)
            self.l1_steps += 1
            self.l1_batches += times
            self.l1_lambda_last = lam

        def _post_step(self, optimizer: Any, *_args: Any) -> None:
            if self.l1.penalty == "proximal":
                lam, lam_beta, times = self._weights()
                with torch.no_grad():
                    proximal_step(self._bns(), param_lrs(optimizer), lam, lam_beta, times)

        def optimizer_step(self) -> None:
            optimizer: Any = self.optimizer
            if not getattr(optimizer, "_greenbench_l1", False):  # ultralytics may rebuild it
                optimizer.register_step_pre_hook(self._pre_step)
                optimizer.register_step_post_hook(self._post_step)
                optimizer._greenbench_l1 = True
            super().optimizer_step()
            self._l1_pending = 0

    return SparseTrainer


def module_trainer(module: Any) -> type[Any]:
    """A ``DetectionTrainer`` class that trains ``module`` itself instead of a model rebuilt
    from its YAML (which would undo a pruning)."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    class ModuleTrainer(DetectionTrainer):  # type: ignore[misc]
        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> Any:
            for p in module.parameters():  # a loaded checkpoint has requires_grad off
                p.requires_grad_(True)
            return module

    return ModuleTrainer
