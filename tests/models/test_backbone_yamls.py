"""The YOLOv5s backbone-replacement model YAMLs in models/: they build offline through greenbench's
DetectAdapter, feed Detect at strides 8/16/32 (their complexity: test_backbone_parity.py), and a
BlockStack one survives a checkpoint round trip and a training epoch. GhostNet is YOLOv5's ghost
layout; greenbench's TimmBackbone layer (a real timm GhostNet) is tested on its own here."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect.adapter import DetectAdapter

ROOT = Path(__file__).parents[2]
MODELS = ROOT / "models"
BACKBONES = ("mobilenetv2", "mobilenetv3s", "mobilenetv3l", "shufflenetv2", "ghostnet")
NC = 14  # the study's class count, written in every file
STACKED = ("mobilenetv2", "mobilenetv3s", "mobilenetv3l", "shufflenetv2")  # built by BlockStack


def yaml_path(backbone: str) -> Path:
    return MODELS / f"yolov5s-{backbone}.yaml"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any non-local name lookup or connection in this process (timm, torch hub, ultralytics)."""
    local = {"localhost", "127.0.0.1", "::1", "", None}
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def guarded_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in local:
            raise OSError(f"network access refused in this test: getaddrinfo {host}")
        return lookup(host, *args, **kwargs)

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in local:
            raise OSError(f"network access refused in this test: connect {address}")
        return connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture
def adapter(tmp_path: Path, clean_ultralytics_env: None, no_network: None) -> DetectAdapter:
    return DetectAdapter(tmp_path / "work")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_builds_offline_feeds_detect_at_strides_8_16_32(adapter: DetectAdapter, backbone: str) -> None:
    yolo = adapter.build(str(yaml_path(backbone)))
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # offline settings are in place before any build
    model = yolo.model.eval()
    detect = model.model[-1]
    assert model.yaml["nc"] == NC and detect.nc == NC
    assert type(detect).__name__ == "AnchorDetect"  # YOLOv5's head, from the file's 'anchors'
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    inputs = [*detect.f]  # the layers Detect reads, P3 to P5
    if backbone in STACKED:  # the stack's taps, each checked against the channels its Index row declares
        inputs = [1, 2, 3]
    seen: dict[int, torch.Tensor] = {}
    handles = [
        model.model[i].register_forward_hook(lambda m, _i, out: seen.update({m.i: out})) for i in inputs
    ]
    imgsz = 96
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, imgsz, imgsz))
    finally:
        for h in handles:
            h.remove()
    for i, stride in zip(inputs, (8, 16, 32), strict=True):
        assert tuple(seen[i].shape[2:]) == (imgsz // stride, imgsz // stride), (backbone, i)
        if backbone in STACKED:
            declared = model.yaml["backbone"][i][3][0]  # Index [channels, n]: not checked by ultralytics
            assert type(model.model[i]).__name__ == "Index"
            assert seen[i].shape[1] == declared, (backbone, i)
    preds = out[0] if isinstance(out, (tuple, list)) else out
    cells = sum((imgsz // s) ** 2 for s in (8, 16, 32))
    assert tuple(preds.shape) == (1, 4 + NC, 3 * cells)  # decoded boxes + class scores per anchor


def test_ghostnet_is_the_yolov5s_ghost_layout(adapter: DetectAdapter) -> None:
    """The study's "GhostNet" is YOLOv5's ghost layout: GhostConv and C3Ghost in place of Conv and
    C3 after the stem, SPPF kept; the other four drop SPPF, as the study's configs do."""
    from ultralytics.nn.modules import C3, SPPF, C3Ghost, GhostConv

    model = adapter.build(str(yaml_path("ghostnet"))).model
    kinds = [type(m) for m in model.model]
    assert kinds.count(GhostConv) == 8 and kinds.count(C3Ghost) == 8 and C3 not in kinds
    assert kinds.count(SPPF) == 1
    assert sum(len(m.m) for m in model.model if isinstance(m, C3Ghost)) == 1 + 2 + 3 + 1 + 1 + 1 + 1 + 1
    for backbone in STACKED:
        stacked = adapter.build(str(yaml_path(backbone))).model
        assert type(stacked.model[0]).__name__ == "BlockStack"
        assert not any(isinstance(m, SPPF) for m in stacked.modules()), backbone


def test_timm_backbone_runs_ghostnet_as_timm_does(no_network: None) -> None:
    """Tapping by module name applies the flattened children in order: the map at ``blocks.9`` must
    equal timm's own ``forward_features`` with the same weights."""
    import timm

    from greenbench.tasks.detect.ultra_modules import TimmBackbone

    backbone = TimmBackbone(960, "ghostnet_100", ["blocks.9"]).eval()
    full: Any = timm.create_model("ghostnet_100", pretrained=False).eval()
    # TimmBackbone names the flattened children "blocks_9"; timm's state dict says "blocks.9"
    state = {re.sub(r"^blocks_(\d+)\.", r"blocks.\1.", k): v for k, v in backbone.m.state_dict().items()}
    missing, unexpected = full.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(("conv_head", "classifier")) for k in missing)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)[-1], full.forward_features(x))


TIMM_GHOSTNET_YAML = """
nc: 14
scales:
  s: [0.33, 0.50, 1024]
backbone:
  - [-1, 1, TimmBackbone, [160, ghostnet_100, [2, 3, 4]]]
  - [0, 1, Index, [40, 0]]
  - [0, 1, Index, [80, 1]]
  - [0, 1, Index, [160, 2]]
  - [-1, 1, SPPF, [1024, 5]]
head:
  - [-1, 1, Conv, [512, 1, 1]]
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 2], 1, Concat, [1]]
  - [-1, 3, C3, [512, False]]
  - [-1, 1, Conv, [256, 1, 1]]
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 1], 1, Concat, [1]]
  - [-1, 3, C3, [256, False]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 9], 1, Concat, [1]]
  - [-1, 3, C3, [512, False]]
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 5], 1, Concat, [1]]
  - [-1, 3, C3, [1024, False]]
  - [[12, 15, 18], 1, Detect, [nc]]
"""


def test_timm_backbone_builds_from_a_model_yaml(adapter: DetectAdapter, tmp_path: Path) -> None:
    """timm's own features_only taps of ghostnet_100 under the YOLOv5s neck: RECIPES.md's 6.03 M."""
    from ultralytics.utils.torch_utils import get_num_params

    from greenbench.tasks.detect.ultra_modules import TimmBackbone

    path = tmp_path / "yolov5s-timm-ghostnet.yaml"
    path.write_text(TIMM_GHOSTNET_YAML)
    model = adapter.build(str(path)).model
    assert isinstance(model.model[0], TimmBackbone)
    assert model.model[0].channels == [40, 80, 160] and model.model[0].strides == [8, 16, 32]
    assert get_num_params(model) == pytest.approx(6_026_046, rel=0.02)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (80, "ghostnet_100", ["blocks.4", "blocks.6", "blocks.8"]),
            "ends with 160 channels, but the row says 80",
        ),
        ((160, "ghostnet_100", ["blocks.4", "blocks.99"]), "no module named"),
        ((160, "ghostnet_100", ["blocks.8", "blocks.4"]), "not in the order"),
        ((160, "ghostnet_100", [2, "blocks.4"]), "taps must be"),
        ((160, "no_such_timm_model", [2, 3, 4]), "could not build timm model"),
    ],
)
def test_timm_backbone_rejects_a_wrong_row(no_network: None, args: tuple[Any, ...], message: str) -> None:
    from greenbench.tasks.detect.ultra_modules import TimmBackbone

    with pytest.raises(GreenbenchError, match=message):
        TimmBackbone(*args)


V2_ROWS = [[1, "Conv", [32, 3, 2]], [1, "InvertedResidual", [16, 1, 1]], [1, "InvertedResidual", [24, 2, 6]]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((16, [1, 2], V2_ROWS), "ends with 24 channels, but the row says 16"),
        ((24, [2, 1], V2_ROWS), "must be increasing row indices in 0..2"),
        ((24, [1, 3], V2_ROWS), "must be increasing row indices in 0..2"),
        ((24, [], V2_ROWS), "taps must be a non-empty list"),
        ((24, [2], [*V2_ROWS[:2], [1, "NoSuchBlock", [24, 2]]]), "row 2 names the block 'NoSuchBlock'"),
        ((24, [2], [*V2_ROWS[:2], [1, "InvertedResidual", 24]]), "row 2 is .*write it as"),
        ((24, [2], [*V2_ROWS[:2], [1, "InvertedResidual", [24, 2]]]), "row 2 .* could not be built"),
        ((24, [2], [*V2_ROWS[:2], [1, "ShuffleBlock", [24, 1]]]), "row 2 .* could not be built"),
    ],
)
def test_block_stack_rejects_a_wrong_row(args: tuple[Any, ...], message: str) -> None:
    from greenbench.tasks.detect.ultra_modules import BlockStack

    with pytest.raises(GreenbenchError, match=message):
        BlockStack(*args)


def test_block_stack_taps_rows_and_repeats() -> None:
    from greenbench.tasks.detect.ultra_modules import BlockStack

    rows = [[1, "ConvReLUMaxPool", [32]], [1, "ShuffleBlock", [64, 2]], [3, "ShuffleBlock", [64, 1]]]
    stack = BlockStack(64, [0, 2], rows).eval()
    assert stack.channels == [32, 64] and stack.strides == [4, 8]
    assert len(stack.m[2]) == 3  # a row of 3 units is one layer, as in the study's row numbers
    with torch.no_grad():
        maps = stack(torch.zeros(2, 3, 64, 64))
    assert [tuple(t.shape) for t in maps] == [(2, 32, 16, 16), (2, 64, 8, 8)]
    assert len(BlockStack(32, [0], rows).m) == 1  # rows after the last tap are not built


@pytest.mark.parametrize(("c_in", "hidden", "stride"), [(16, 16, 2), (24, 88, 1), (40, 96, 2), (40, 240, 1)])
def test_mobilenetv3_block_keeps_the_study_order_and_residual(c_in: int, hidden: int, stride: int) -> None:
    from greenbench.tasks.detect.ultra_modules import MobileNetV3Block, SqueezeExcite

    c_out = c_in if stride == 1 else c_in + 8
    block = MobileNetV3Block(c_in, c_out, hidden, 5, stride, 1, 1).eval()
    kinds = [type(m).__name__ for m in block.conv]
    if hidden == c_in:  # depthwise conv with its activation, then the gate
        assert kinds == ["Conv", "SqueezeExcite", "Conv"]
    else:  # expansion; depthwise conv without activation, the gate, then the activation
        assert kinds == ["Conv", "Conv", "SqueezeExcite", "Hardswish", "Conv"]
    gate = next(m for m in block.conv if isinstance(m, SqueezeExcite))
    assert gate.fc[0].out_features == hidden // 4
    x = torch.randn(1, c_in, 32, 32)
    with torch.no_grad():
        y = block(x)
        assert tuple(y.shape) == (1, c_out, 32 // stride, 32 // stride)
        assert block.residual == (stride == 1 and c_in == c_out)
        if block.residual:
            torch.testing.assert_close(y - x, block.conv(x))


def test_register_refuses_to_shadow_an_ultralytics_layer(
    adapter: DetectAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ultralytics.nn.tasks as tasks

    from greenbench.tasks.detect import ultra_modules

    monkeypatch.setitem(ultra_modules.CUSTOM_LAYERS, "Conv", ultra_modules.TimmBackbone)
    with pytest.raises(GreenbenchError, match="already defines a layer named 'Conv'"):
        ultra_modules.register()
    assert tasks.Conv.__module__.startswith("ultralytics")


LOAD_IN_FRESH_PROCESS = """
import sys
from pathlib import Path
from greenbench.tasks.detect.offline import prepare_ultralytics
prepare_ultralytics(Path(sys.argv[2]))
import ultralytics.nn.tasks
from ultralytics import YOLO
assert not hasattr(ultralytics.nn.tasks, "BlockStack")  # the pickle alone must be enough to load
model = YOLO(sys.argv[1], task="detect").model
print(type(model.model[0]).__module__, type(model.model[0]).__name__)
print(type(model).__name__, type(model.model[-1]).__name__)
print(sum(p.numel() for p in model.parameters()))
"""


@pytest.mark.slow
def test_stacked_checkpoint_loads_back_in_a_fresh_process(adapter: DetectAdapter, tmp_path: Path) -> None:
    yolo = adapter.build(str(yaml_path("mobilenetv3s")))
    params = sum(p.numel() for p in yolo.model.parameters())
    path = adapter.save(yolo, tmp_path / "ckpt" / "mobilenetv3s.pt")
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        # tests/e2e/netguard refuses (and logs) any non-local lookup or connection in the subprocess
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "e2e" / "netguard"), str(ROOT)]),
        "GREENBENCH_NETLOG": str(tmp_path / "network-attempts.log"),
    }
    out = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(path), str(tmp_path / "work2")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    kind, head, count = out.stdout.strip().splitlines()[-3:]
    assert kind == "greenbench.tasks.detect.ultra_modules BlockStack"
    assert head == "AnchorDetectionModel AnchorDetect"  # the study's head, and its loss, come back too
    assert int(count) == params
    assert not (tmp_path / "network-attempts.log").exists()


@pytest.mark.slow
def test_stacked_model_trains_one_epoch_on_synthetic_data(adapter: DetectAdapter, tmp_path: Path) -> None:
    """ultralytics' trainer rebuilds the model from the YAML stored in it: this needs ``register``."""
    from greenbench.tasks.detect.synth import SynthSpec, synth_detection
    from greenbench.tasks.detect.ultra_modules import BlockStack

    data = synth_detection(tmp_path / "data", SynthSpec(classes=NC, images=12, imgsz=64, seed=3))
    yolo = adapter.build(str(yaml_path("mobilenetv3s")))
    params = sum(p.numel() for p in yolo.model.parameters())
    args = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "optimizer": "SGD", "lr0": 0.01}
    weights = adapter.train(
        yolo, data, tmp_path / "runs" / "mobilenetv3s", {**args, "warmup_epochs": 0, "mosaic": 0.0}
    )
    trained = adapter.load(weights).model
    assert isinstance(trained.model[0], BlockStack)
    assert type(trained.model[-1]).__name__ == "AnchorDetect"  # the trainer's rebuild kept the study's head
    columns = (weights.parents[1] / "results.csv").read_text().splitlines()[0]
    assert "train/obj_loss" in columns and "train/dfl_loss" not in columns  # YOLOv5's loss trained it
    assert sum(p.numel() for p in trained.parameters()) == params
    assert all(torch.isfinite(p).all() for p in trained.parameters())
