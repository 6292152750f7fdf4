"""Fixtures of the network-slimming stage tests: real ultralytics on tiny synthetic data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ULTRALYTICS_ENV

#: 1 epoch at 64 px: 16 train images in 4 batches; nbs = batch, so one optimizer step per batch
TINY_TRAIN: dict[str, Any] = {
    "epochs": 1, "imgsz": 64, "batch": 4, "nbs": 4, "workers": 0, "optimizer": "SGD", "lr0": 0.01,
    "warmup_epochs": 0, "mosaic": 0.0, "amp": False, "val": False, "seed": 0, "deterministic": True,
}  # fmt: skip


@dataclass
class Slim:
    """A detect adapter, a synthetic data set and an estimate meter, to run stages with."""

    adapter: Any
    data_yaml: Path
    root: Path
    meter: Any
    events: list[str] = field(default_factory=list)

    def ctx(self, stage: type[Any], params: dict[str, Any], parent: Path | None, out: str) -> Any:
        """A ``StageContext`` for ``stage`` with validated ``params`` starting from ``parent``."""
        from greenbench.pipeline.base import StageContext

        return StageContext(
            task=self.adapter,
            data_yaml=self.data_yaml,
            defaults=dict(TINY_TRAIN),
            params=stage.validate_params(dict(params), type(self.adapter)),
            input=parent,
            model="yolov5n.yaml",
            weights=None,
            out_dir=self.root / out,
            meter=self.meter,
            emit=self.events.append,
            variant="v",
        )

    def run(self, stage: type[Any], params: dict[str, Any], parent: Path | None, out: str) -> Any:
        """Run ``stage`` inside an open meter; its ``StageResult``."""
        with self.meter:
            return stage().run(self.ctx(stage, params, parent, out))

    def untrained(self, name: str = "untrained") -> Path:
        """An untrained yolov5n with the data's 2 classes, saved as an ultralytics checkpoint."""
        from ultralytics.nn.tasks import DetectionModel

        yolo = self.adapter.build("yolov5n.yaml")
        yolo.model = DetectionModel("yolov5n.yaml", nc=2, verbose=False)
        yolo.model.names = {0: "a", 1: "b"}
        return Path(self.adapter.save(yolo, self.root / name / "model.pt"))


@pytest.fixture(scope="module")
def slim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slim]:
    """One adapter and data set per test module (ultralytics' variables restored afterwards)."""
    from greenbench.measure.energy.estimate import EstimateMeter
    from greenbench.tasks.detect.adapter import DetectAdapter
    from greenbench.tasks.detect.synth import SynthSpec, synth_detection

    root = tmp_path_factory.mktemp("slim")
    with pytest.MonkeyPatch.context() as mp:
        for var in ULTRALYTICS_ENV:  # set then delete: the context restores what was there
            mp.setenv(var, "")
            mp.delenv(var)
        adapter = DetectAdapter(root / "work")
        data = synth_detection(root / "data", SynthSpec(classes=2, images=20, imgsz=64, seed=1))
        yield Slim(adapter, data, root, EstimateMeter())


def gammas(model: Any) -> Any:
    """The BN γ outside the Detect head, concatenated (float64)."""
    import torch

    from greenbench.tasks.detect.ultra_slim import backbone_bns

    return torch.cat([bn.weight.detach().double().flatten() for bn in backbone_bns(model)])
