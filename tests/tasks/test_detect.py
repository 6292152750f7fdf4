"""Detection adapter guards: weights never downloaded, ultralytics' rename sidestepped,
a diverged training stopped with a clear error."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect.adapter import DetectAdapter, check_weights


@pytest.fixture
def adapter(tmp_path: Path, clean_ultralytics_env: None) -> DetectAdapter:
    return DetectAdapter(tmp_path / "work")


def test_missing_weights_is_an_error_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(GreenbenchError, match="never downloads weights") as e:
        check_weights(tmp_path / "yolov5s.pt")
    assert str(tmp_path / "yolov5s.pt") in str(e.value)


def test_model_pt_not_on_disk_is_refused_before_ultralytics(adapter: DetectAdapter, tmp_path: Path) -> None:
    with pytest.raises(GreenbenchError, match="does not exist"):
        adapter.build(str(tmp_path / "yolov8n.pt"))


def test_yolov5_named_checkpoint_loads_without_the_u_rename(adapter: DetectAdapter, tmp_path: Path) -> None:
    built = adapter.build("yolov5n.yaml")
    # no letter "u" anywhere in the path: ultralytics would load .../yolov5nu.pt (a download)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    path = adapter.save(built, folder / "yolov5n.pt")
    assert "u" not in str(path).replace(str(tmp_path), "")
    loaded = adapter.load(path)
    assert sum(p.numel() for p in loaded.model.parameters()) == sum(
        p.numel() for p in built.model.parameters()
    )


class FakeYolo:
    """Stands in for ``YOLO`` to exercise the adapter's guard on the loss after ``train``."""

    def __init__(self, loss: float, out: Path) -> None:
        self.loss, self.out = loss, out
        self.trainer: Any = None

    def add_callback(self, *_: Any) -> None:
        pass

    def train(self, **kwargs: Any) -> None:
        weights = Path(kwargs["project"]) / kwargs["name"] / "weights"
        weights.mkdir(parents=True)
        (weights / "last.pt").write_bytes(b"x")
        self.trainer = SimpleNamespace(
            tloss={"box_loss": torch.tensor(self.loss)},
            label_loss_items=lambda d: {k: float(v) for k, v in d.items()},
            best=weights / "best.pt",
            last=weights / "last.pt",
        )


def test_diverged_training_is_a_clear_error(adapter: DetectAdapter, tmp_path: Path) -> None:
    with pytest.raises(GreenbenchError, match=r"training diverged.*Lower 'lr0'"):
        adapter.train(FakeYolo(math.nan, tmp_path), tmp_path / "data.yaml", tmp_path / "run1", {})
    out = adapter.train(FakeYolo(1.5, tmp_path), tmp_path / "data.yaml", tmp_path / "run2", {})
    assert out.name == "last.pt"  # no best.pt: falls back to last


def test_pretrained_backbone_not_in_cache_is_an_error_naming_the_file(
    adapter: DetectAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty torch cache
    model = Path(__file__).parents[2] / "models" / "yolov5n-mobilenetv3s.yaml"
    pretrained = tmp_path / "pretrained.yaml"
    pretrained.write_text(
        model.read_text().replace("mobilenet_v3_small, null,", "mobilenet_v3_small, DEFAULT,")
    )
    with pytest.raises(GreenbenchError, match="never downloads weights") as e:
        adapter.build(str(pretrained))
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in str(e.value)


def test_checkpoints_pickled_before_tasks_were_a_package_still_load() -> None:
    """A checkpoint written by an older greenbench names its custom layer by the old module path;
    unpickling resolves it to the class now in the detection task's package."""
    import pickle

    from greenbench.tasks.detect.ultra_modules import TimmBackbone

    old = b"cgreenbench.adapters.ultra_modules\nTimmBackbone\n."  # protocol 0: a global reference
    assert pickle.loads(old) is TimmBackbone


def test_total_scope_decodes_letterboxes_runs_and_applies_nms_per_image(
    adapter: DetectAdapter, tmp_path: Path
) -> None:
    from greenbench.tasks.base import Synthetic

    data = adapter.write_synthetic(tmp_path / "data", Synthetic(classes=2, images=20, imgsz=64, seed=1))
    module = adapter.inference_module(adapter.build("yolov5n.yaml"))
    seen: list[tuple[int, ...]] = []

    def forward(x: Any) -> list[Any]:
        seen.append(tuple(x.shape))
        with torch.inference_mode():
            return [module(torch.from_numpy(x))[0].numpy()]

    call, what = adapter.end_to_end(data, 64, forward)
    for _ in range(3):
        call()
    assert seen == [(1, 3, 64, 64)] * 3  # one letterboxed image from its file per call
    assert "NMS" in what and "letterbox" in what and "evaluation split" in what
