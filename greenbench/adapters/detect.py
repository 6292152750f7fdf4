"""Detection adapter on ultralytics: build, train, evaluate, predict, save and load.

Every network path of ultralytics is switched off by ``greenbench.offline`` before the first
import (done in ``DetectAdapter.__init__``); nothing here downloads weights or data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenbench.errors import GreenbenchError
from greenbench.offline import prepare_ultralytics

#: training arguments greenbench always sets (the suite may not override them)
FORCED_TRAIN_ARGS = {"plots": False, "exist_ok": True, "verbose": False}


def check_weights(path: str | Path, what: str = "weights") -> Path:
    """Return ``path`` if it is a file on disk; otherwise a clear error (never a download)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise GreenbenchError(
            f"{what} file {p} does not exist. greenbench never downloads weights: put the file "
            f"at that path (for example copy it from your ultralytics or torch cache) or change "
            f"the suite's 'model:'/'weights:' entry to a model config (.yaml) to train from scratch."
        )
    return p


class DetectAdapter:
    """Ultralytics YOLO detection models.

    workdir: greenbench's work folder; ultralytics settings, fonts and caches go below it.
    device: ``cpu`` or ``cuda:N``.
    """

    task = "detect"

    def __init__(self, workdir: Path, device: str = "cpu") -> None:
        self.workdir = Path(workdir).resolve()
        prepare_ultralytics(self.workdir)
        self.device = device

    # --- models -------------------------------------------------------------------------
    def build(self, model: str, weights: str | None = None) -> Any:
        """A ``YOLO`` from a model config (.yaml) or a checkpoint on disk, optionally with weights."""
        from ultralytics import YOLO

        if model.endswith(".pt"):
            return YOLO(str(check_weights(model, "model")), task="detect")
        yolo = YOLO(model, task="detect")
        if weights:
            yolo.load(str(check_weights(weights)))
        return yolo

    def load(self, checkpoint: Path) -> Any:
        """A ``YOLO`` from a checkpoint greenbench wrote."""
        from ultralytics import YOLO

        return YOLO(str(check_weights(checkpoint, "checkpoint")), task="detect")

    def save(self, yolo: Any, path: Path) -> Path:
        """Save ``yolo`` as an ultralytics checkpoint at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        yolo.save(str(path))
        return path

    # --- training -----------------------------------------------------------------------
    def train(
        self,
        yolo: Any,
        data_yaml: Path,
        out_dir: Path,
        args: dict[str, Any],
        on_epoch: Callable[[int, int], None] | None = None,
    ) -> Path:
        """Train ``yolo`` on ``data_yaml`` into ``out_dir``; return the best (else last) weights."""
        if on_epoch is not None:
            yolo.add_callback(
                "on_train_epoch_end", lambda tr: on_epoch(int(tr.epoch) + 1, int(tr.epochs))
            )
        out_dir = out_dir.resolve()
        yolo.train(
            data=str(data_yaml),
            project=str(out_dir.parent),  # absolute: a relative project lands in runs_dir
            name=out_dir.name,
            device=self.device,
            **{**args, **FORCED_TRAIN_ARGS},
        )
        trainer = yolo.trainer
        loss = getattr(trainer, "tloss", None)
        if loss is not None and not all(math.isfinite(float(v)) for v in loss.flatten()):
            raise GreenbenchError(
                f"training diverged: the loss became {loss.tolist()} (not finite) in {out_dir}. "
                f"Lower 'lr0' or raise 'warmup_epochs' in the suite's defaults or stage params."
            )
        for candidate in (trainer.best, trainer.last):
            if Path(candidate).is_file():
                return Path(candidate)
        raise GreenbenchError(f"training wrote no weights in {out_dir}; see the log there.")

    # --- evaluation ---------------------------------------------------------------------
    def evaluate(
        self, yolo: Any, data_yaml: Path, imgsz: int, out_dir: Path, split: str = "test"
    ) -> dict[str, float]:
        """Precision, recall, mAP50, mAP50-95 (fractions in [0, 1]) on ``split``."""
        metrics = yolo.val(
            data=str(data_yaml),
            split=split,
            imgsz=imgsz,
            batch=8,
            device=self.device,
            plots=False,
            verbose=False,
            project=str(out_dir.resolve().parent),
            name=out_dir.name,
            exist_ok=True,
        )
        box = metrics.box
        return {
            "precision": float(box.mp),
            "recall": float(box.mr),
            "map50": float(box.map50),
            "map50_95": float(box.map),
        }

    # --- inference ----------------------------------------------------------------------
    def inference_module(self, yolo: Any) -> Any:
        """The fused, eval-mode ``nn.Module`` on this adapter's device (what latency times)."""
        import copy

        import torch

        model = copy.deepcopy(yolo.model).float()
        for p in model.parameters():
            p.requires_grad_(False)
        model = model.fuse() if hasattr(model, "fuse") else model
        return model.eval().to(torch.device(self.device))

    def predictor(self, module: Any, batch: int, imgsz: int) -> Callable[[], None]:
        """A callable running one forward pass of ``batch`` images of ``imgsz``² (no pre/post-processing)."""
        import torch

        x = torch.rand(batch, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
        x = x.to(torch.device(self.device))

        def run() -> None:
            with torch.inference_mode():
                module(x)

        return run
