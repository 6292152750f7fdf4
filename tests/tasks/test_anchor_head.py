"""YOLOv5's anchor-based head (greenbench/tasks/detect/anchor_head.py): its decoding and target
assignment on hand-computed cases, its loss teaching a toy head to find boxes that NMS then
returns, the 'anchors' key checked, and a model with it exported to ONNX and run by onnxruntime
with the same outputs as torch. Training, checkpoints and the study's parameter counts:
tests/models/test_backbone_yamls.py and test_backbone_parity.py."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch

from greenbench.errors import GreenbenchError
from greenbench.tasks.detect.adapter import DetectAdapter

MODELS = Path(__file__).parents[2] / "models"
STRIDES = (8.0, 16.0, 32.0)


@pytest.fixture
def adapter(tmp_path: Path, clean_ultralytics_env: None) -> DetectAdapter:
    return DetectAdapter(tmp_path / "work")  # ultralytics' offline settings before its first import


@pytest.fixture
def ah(adapter: DetectAdapter) -> ModuleType:
    from greenbench.tasks.detect import anchor_head

    return anchor_head


def head(ah: ModuleType, nc: int = 2, ch: tuple[int, ...] = (4, 4, 4)) -> Any:
    h = ah.AnchorDetect(nc, ah.COCO_ANCHORS, ch)
    h.stride = torch.tensor(STRIDES)
    return h


def test_zero_logits_decode_to_cell_centres_and_anchor_sizes(ah: ModuleType) -> None:
    """σ(0) = 0.5: centre (cell + 0.5) × stride, size (2 × 0.5)² × anchor, score 0.5 × 0.5."""
    h = head(ah).eval()
    for conv in h.m:
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    feats = [torch.zeros(1, 4, 64 // int(s), 64 // int(s)) for s in STRIDES]
    y, raw = h(feats)
    assert y.shape == (1, 4 + 2, 3 * (8 * 8 + 4 * 4 + 2 * 2)) and len(raw["feats"]) == 3
    boxes = y[0].T  # (boxes, 6), P3 first, then anchor, row, column
    torch.testing.assert_close(boxes[0], torch.tensor([4.0, 4.0, 10.0, 13.0, 0.25, 0.25]))
    # P3, anchor 1, row 2, column 5
    torch.testing.assert_close(boxes[1 * 64 + 2 * 8 + 5], torch.tensor([44.0, 20.0, 16.0, 30.0, 0.25, 0.25]))
    # P5 (after 3 x 64 + 3 x 16 boxes), anchor 2, row 1, column 0
    torch.testing.assert_close(
        boxes[192 + 48 + 2 * 4 + 2], torch.tensor([16.0, 48.0, 373.0, 326.0, 0.25, 0.25])
    )
    h.export = True  # the exporter's mode: the decoded tensor alone
    assert torch.equal(h(feats), y)


def test_targets_match_anchors_within_the_ratio_and_two_neighbouring_cells(ah: ModuleType) -> None:
    """A 6.4 px box centred at (19.2, 25.6) in a 64 px image: at P3 (8 px cells, centre (2.4, 3.2)
    cells, size 0.8 cells) only anchor 0 (1.25 x 1.625 cells) is within a side ratio of 4; the
    centre's own cell (2, 3) learns it, and the left (1, 3) and upper (2, 2) neighbours, as the
    centre is in the left and upper halves of its cell. At P4 and P5 no anchor is within ratio 4."""
    h = head(ah, nc=3)
    loss = ah.AnchorLoss(SimpleNamespace(model=[h], args={"imgsz": 64}))
    feats = [torch.zeros(1, 3 * 8, 64 // int(s), 64 // int(s)) for s in STRIDES]
    targets = torch.tensor([[0.0, 1.0, 0.3, 0.4, 0.1, 0.1]])  # image, class, x, y, w, h (normalised)
    tcls, tbox, indices, anchors = loss.build_targets(feats, targets)
    b, a, gj, gi = indices[0]
    assert b.tolist() == [0, 0, 0] and a.tolist() == [0, 0, 0] and tcls[0].tolist() == [1, 1, 1]
    assert sorted(zip(gi.tolist(), gj.tolist(), strict=True)) == [(1, 3), (2, 2), (2, 3)]
    cells = {(int(i), int(j)): box for i, j, box in zip(gi, gj, tbox[0], strict=True)}
    torch.testing.assert_close(cells[(2, 3)], torch.tensor([0.4, 0.2, 0.8, 0.8]))  # offset in cell, size
    torch.testing.assert_close(cells[(1, 3)], torch.tensor([1.4, 0.2, 0.8, 0.8]))
    torch.testing.assert_close(cells[(2, 2)], torch.tensor([0.4, 1.2, 0.8, 0.8]))
    torch.testing.assert_close(anchors[0], torch.tensor([[1.25, 1.625]] * 3))
    assert indices[1][0].numel() == 0 and indices[2][0].numel() == 0


def test_gains_are_scaled_as_yolov5_scales_them(ah: ModuleType) -> None:
    h = head(ah, nc=14)
    loss = ah.AnchorLoss(SimpleNamespace(model=[h], args=SimpleNamespace(imgsz=320)))
    assert loss.box_gain == pytest.approx(0.05)
    assert loss.cls_gain == pytest.approx(0.5 * 14 / 80)
    assert loss.obj_gain == pytest.approx(1.0 * (320 / 640) ** 2)
    assert loss.balance == (4.0, 1.0, 0.4)


def test_the_models_loss_gains_and_positive_weights_are_used(ah: ModuleType) -> None:
    """A model's ``loss_gains`` (the finetune stage's, from a YOLOv5 hyperparameter file) set the
    gains, the BCE positive weights and anchor_t: doubling the box gain doubles the box loss, a
    positive weight of 2 on objectness raises the objectness loss."""
    h = head(ah, nc=3)
    feats = [torch.zeros(1, 3 * 8, 64 // int(s), 64 // int(s)) for s in STRIDES]
    batch = {
        "batch_idx": torch.zeros(1),
        "cls": torch.tensor([[1.0]]),
        "bboxes": torch.tensor([[0.3, 0.4, 0.1, 0.1]]),
    }
    base = ah.AnchorLoss(SimpleNamespace(model=[h], args={"imgsz": 64}))
    gains = ah.LossGains(box=0.1, obj=1.0, cls=0.5, cls_pw=1.0, obj_pw=1.0, anchor_t=3.0)
    tuned = ah.AnchorLoss(SimpleNamespace(model=[h], args={"imgsz": 64}, loss_gains=gains))
    assert tuned.anchor_t == 3.0 and base.anchor_t == 4.0  # the same matches here (ratio 2.03)
    _, a = base({"feats": feats}, batch)
    _, b = tuned({"feats": feats}, batch)
    torch.testing.assert_close(b["box_loss"], 2 * a["box_loss"])  # box 0.1 against 0.05, same matches
    doubled = ah.AnchorLoss(SimpleNamespace(model=[h], args={"imgsz": 64}), ah.LossGains(obj_pw=2.0))
    _, c = doubled({"feats": feats}, batch)  # the matched cells' objectness terms weigh double
    assert float(c["obj_loss"]) > float(a["obj_loss"])


def test_the_loss_teaches_a_head_to_find_the_boxes(ah: ModuleType) -> None:
    """Free feature maps and the head trained on one image with three boxes: the loss falls, and
    the decoded output, through ultralytics' NMS, gives each box back with its class."""
    from ultralytics.utils.metrics import box_iou
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import xywh2xyxy

    torch.manual_seed(0)
    h = head(ah, nc=3, ch=(8, 8, 8))
    h.bias_init()
    feats = [torch.nn.Parameter(torch.randn(1, 8, 128 // int(s), 128 // int(s))) for s in STRIDES]
    loss_fn = ah.AnchorLoss(SimpleNamespace(model=[h], args={"imgsz": 128}))
    xywh = torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.7, 0.1, 0.1], [0.5, 0.6, 0.6, 0.3]])
    batch = {"batch_idx": torch.zeros(3), "cls": torch.tensor([[0.0], [1.0], [2.0]]), "bboxes": xywh}
    opt = torch.optim.Adam([*h.parameters(), *feats], lr=0.05)
    h.train()
    first = None
    for _ in range(150):
        loss, items = loss_fn(h(feats), batch)
        first = float(loss.detach().sum()) if first is None else first
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    assert set(items) == {"box_loss", "obj_loss", "cls_loss"}
    assert float(loss.detach().sum()) < 0.2 * first
    h.eval()
    with torch.no_grad():
        found = non_max_suppression(h(feats)[0], conf_thres=0.25, iou_thres=0.45)[0]
    truth = xywh2xyxy(xywh * 128)
    assert len(found) == 3
    iou = box_iou(found[:, :4], truth)
    assert (iou.max(1).values > 0.7).all()
    assert found[:, 5].tolist() == [float(c) for c in iou.argmax(1).tolist()]  # each box with its class


@pytest.mark.parametrize(
    "anchors",
    [
        None,
        [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119]],  # two rows for three levels
        [[10, 13, 16], [30, 61, 62], [116, 90, 156]],  # odd: not (w, h) pairs
        [[10, 13], [30, 61, 62, 45], [116, 90]],  # rows of different lengths
        [[10, 13, 16, -30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
        [[10, 13, "x", 30], [30, 61, 62, 45], [116, 90, 156, 198]],
    ],
)
def test_bad_anchors_are_a_clear_error(ah: ModuleType, anchors: Any) -> None:
    with pytest.raises(GreenbenchError, match=r"'anchors' in model.yaml must be 3 lists"):
        ah.check_anchors(anchors, 3, "model.yaml")


def test_a_bad_anchors_key_in_a_model_file_names_the_file(adapter: DetectAdapter, tmp_path: Path) -> None:
    text = (MODELS / "yolov5s-anchor.yaml").read_text()
    bad = tmp_path / "two-rows.yaml"
    start = text.index("anchors:")
    end = text.index("\nbackbone:")
    bad.write_text(text[:start] + "anchors: [[10,13, 16,30, 33,23], [30,61, 62,45, 59,119]]\n" + text[end:])
    with pytest.raises(GreenbenchError, match=r"two-rows\.yaml"):
        adapter.build(str(bad))


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_as_in_torch(adapter: DetectAdapter, tmp_path: Path) -> None:
    """ultralytics' exporter sees the head as its Detect (export mode, fixed shape) and the ONNX
    file computes what torch computes."""
    import numpy as np
    import onnxruntime as ort

    yolo = adapter.build(str(MODELS / "yolov5s-mobilenetv2.yaml"))
    path = adapter.save(yolo, tmp_path / "m" / "mobilenetv2.pt")
    onnx = adapter.export_onnx(path, imgsz=64, dynamic=False, simplify=False, opset=None)
    x = torch.rand(1, 3, 64, 64)
    module = adapter.inference_module(adapter.load(path))
    with torch.no_grad():
        expected = module(x)[0].numpy()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert got.shape == expected.shape == (1, 4 + 14, 3 * (8 * 8 + 4 * 4 + 2 * 2))
    # the checkpoint is fp16 (as ultralytics saves): both sides load the same rounded weights
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-2)


@pytest.mark.slow
def test_weights_load_the_backbone_and_training_starts_from_them(
    adapter: DetectAdapter, tmp_path: Path
) -> None:
    """The study's start: the anchor-based model built with an anchor-free checkpoint's weights
    (ultralytics' yolov5su.pt stands for it here) takes every backbone and neck tensor and keeps
    its new head; ultralytics' trainer, rebuilding the model, starts from the same tensors (at a
    learning rate of 0 the first conv is the checkpoint's after an epoch)."""
    from greenbench.tasks.detect.synth import SynthSpec, synth_detection

    source = adapter.build("yolov5s.yaml")  # anchor-free, the same backbone and neck layers
    ckpt = adapter.save(source, tmp_path / "ckpt" / "coco-like.pt")
    stored = adapter.load(ckpt).model.state_dict()
    yolo = adapter.build(str(MODELS / "yolov5s-anchor.yaml"), weights=str(ckpt))
    state = yolo.model.state_dict()
    body = [k for k in state if not k.startswith("model.24.")]
    assert type(yolo.model.model[-1]).__name__ == "AnchorDetect"
    assert all(torch.equal(state[k].half(), stored[k].half()) for k in body if state[k].is_floating_point())
    data = synth_detection(tmp_path / "data", SynthSpec(classes=14, images=12, imgsz=64, seed=1))
    args = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "optimizer": "SGD", "lr0": 0.0,
            "warmup_epochs": 0, "warmup_bias_lr": 0.0, "mosaic": 0.0, "val": False}  # fmt: skip
    trained = adapter.load(adapter.train(yolo, data, tmp_path / "runs" / "anchor", args)).model
    assert type(trained.model[-1]).__name__ == "AnchorDetect"
    first = "model.0.conv.weight"
    assert torch.equal(trained.state_dict()[first].half(), stored[first].half())
