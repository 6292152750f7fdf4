"""The classification task: data checks, top-k, freezing, distillation, low rank, checkpoints
that keep a changed structure, pretrained weights from a file, and complexity against
torchvision's own metadata."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from greenbench.errors import GreenbenchError
from greenbench.measure.complexity import count_macs, count_params
from greenbench.tasks import task_class
from greenbench.tasks.base import Synthetic
from greenbench.tasks.classify import data, models
from greenbench.tasks.classify.distill import DistillStage, distillation_loss
from greenbench.tasks.classify.lowrank import LowRankStage, factor_layer, factorize
from greenbench.tasks.classify.task import ClassifyTask, scores, topk
from greenbench.tasks.classify.train import check_args


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-class synthetic ImageFolder of 32 px images."""
    out = tmp_path_factory.mktemp("cls") / "data"
    return ClassifyTask.write_synthetic(out, Synthetic(classes=3, images=60, imgsz=32, seed=1))


@pytest.fixture(scope="module")
def staged(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = ClassifyTask.check_dataset(folder)
    return ClassifyTask.stage_dataset(ref, tmp_path_factory.mktemp("work"))


@pytest.fixture
def task(tmp_path: Path) -> ClassifyTask:
    return ClassifyTask(tmp_path / "work")


def test_registered_as_a_builtin_task() -> None:
    assert task_class("classify") is ClassifyTask
    assert ClassifyTask.headline == "top1" and ClassifyTask.table_accuracy == ("top1", "top5")


def test_model_list_is_torchvisions_own() -> None:
    import torchvision

    assert sorted(models.TORCHVISION_MODELS) == sorted(
        torchvision.models.list_models(module=torchvision.models)
    )
    assert ClassifyTask.builtin_models()[0] == "resnet18"
    assert ClassifyTask.is_builtin_model("timm:resnet18") and not ClassifyTask.is_builtin_model(
        "yolov8n.yaml"
    )


# --- data ---------------------------------------------------------------------------------


def test_dataset_check_finds_classes_splits_and_a_content_fingerprint(folder: Path) -> None:
    ref = ClassifyTask.check_dataset(folder)
    assert ref.names == ["class0", "class1", "class2"]
    contents = ref.contents
    assert set(contents.samples) == {"train", "val", "test"}
    assert len(contents.samples["train"]) > len(contents.samples["test"]) > 0
    assert ref.fingerprint == ClassifyTask.check_dataset(folder).fingerprint
    image = folder / contents.samples["test"][0][0]
    image.write_bytes(image.read_bytes())  # same bytes, same key
    assert ref.fingerprint == ClassifyTask.check_dataset(folder).fingerprint


def test_dataset_errors_name_the_folder_and_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(GreenbenchError, match=r"no val/, test/ folder.*greenbench data digits"):
        ClassifyTask.check_dataset(tmp_path)
    from PIL import Image

    for split in ("val", "test"):
        (tmp_path / split / "zebra").mkdir(parents=True)
    (tmp_path / "train" / "b").mkdir()
    for c in ("a", "b"):
        Image.new("RGB", (4, 4)).save(tmp_path / "train" / c / "x.png")
    with pytest.raises(GreenbenchError, match="'zebra' is not among train/'s classes"):
        ClassifyTask.check_dataset(tmp_path)


def test_settings_file_is_checked(folder: Path, tmp_path: Path) -> None:
    settings = tmp_path / "dataset.yaml"
    settings.write_text(f"path: {folder}\nnormalize: zscore\n")
    with pytest.raises(GreenbenchError, match="normalize 'zscore' is not one of imagenet, minus1_1, none"):
        ClassifyTask.check_dataset(settings)
    settings.write_text(f"path: {folder}\nnormalize: minus1_1\npad: false\n")
    ref = ClassifyTask.check_dataset(settings)
    assert ref.contents.normalize == "minus1_1" and ref.contents.pad is False


def test_box_crop_and_padding_reach_the_pixels(tmp_path: Path) -> None:
    from PIL import Image

    for split in data.SPLITS:
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            img = np.zeros((20, 40, 3), dtype=np.uint8)
            img[:, 20:] = 255  # right half white
            Image.fromarray(img).save(tmp_path / split / c / "x.png")
    (tmp_path / "boxes.csv").write_text("path,x1,y1,x2,y2\ntrain/a/x.png,20,0,40,20\n")
    (tmp_path / "dataset.yaml").write_text("boxes: boxes.csv\npad: true\n")
    _, contents = data.check(tmp_path)
    cropped = data.load_image(contents, "train/a/x.png", 16)
    padded = data.load_image(contents, "train/b/x.png", 16)
    assert cropped.shape == (3, 16, 16) and cropped.min() == 255  # only the white half is left
    assert padded[:, 0, :].max() == 0 and padded[:, 8, 12].min() > 200  # black bars above, white at right
    (tmp_path / "boxes.csv").write_text("train/a/nope.png,0,0,1,1\n")
    with pytest.raises(GreenbenchError, match="name no image"):
        data.check(tmp_path)


def test_digits_are_real_and_split_8_1_1(tmp_path: Path) -> None:
    from greenbench.tasks.classify.synth import write_digits

    root = write_digits(tmp_path / "digits")
    ref = ClassifyTask.check_dataset(root)
    counts = {s: len(v) for s, v in ref.contents.samples.items()}
    assert sum(counts.values()) == 1797 and ref.names == [str(d) for d in range(10)]
    assert counts["train"] > 7 * counts["test"] and counts["val"] == counts["test"]
    assert ref.contents.normalize == "minus1_1"


# --- scores -------------------------------------------------------------------------------


def test_topk_on_known_logits() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    labels = np.array([1, 2, 2, 1])
    assert topk(logits, labels, 1) == 0.5  # rows 0 and 2
    assert topk(logits, labels, 2) == 0.75  # row 1's label is third
    assert topk(logits, labels, 5) == 1.0  # k capped at the classes
    s = scores(logits, labels, ["a", "b", "c"])
    assert s["details"]["confusion"] == [[0, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert s["details"]["per_class_top1"] == {"a": None, "b": 0.5, "c": 0.5}


def test_distillation_loss_equals_the_closed_form() -> None:
    s = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    t = torch.tensor([[1.0, 1.0, 0.0], [3.0, -1.0, 0.5]])
    y = torch.tensor([0, 1])
    temperature, alpha = 2.0, 0.7
    p_t = torch.softmax(t / temperature, dim=1)
    kl = (p_t * (p_t.log() - torch.log_softmax(s / temperature, dim=1))).sum(dim=1).mean()
    ce = -torch.log_softmax(s, dim=1)[torch.arange(2), y].mean()
    expected = alpha * temperature**2 * kl + (1 - alpha) * ce
    assert torch.allclose(distillation_loss(s, t, y, temperature, alpha), expected, atol=1e-6)
    assert torch.allclose(distillation_loss(s, s, y, temperature, 1.0), torch.tensor(0.0), atol=1e-6)


# --- models -------------------------------------------------------------------------------

COMPLEXITY_MODELS = [
    "resnet18",
    "resnet50",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "shufflenet_v2_x1_0",
    "squeezenet1_0",
    "regnet_y_400mf",
]


@pytest.mark.parametrize("name", COMPLEXITY_MODELS)
def test_params_and_gmacs_equal_torchvisions_metadata(name: str, task: ClassifyTask) -> None:
    from torchvision.models import get_model_weights

    meta = get_model_weights(name).DEFAULT.meta
    module = task.inference_module(task.build(name))
    assert count_params(module) == meta["num_params"]
    assert count_macs(module, 224) / 1e9 == pytest.approx(meta["_ops"], rel=0.01)


def test_pretrained_weights_load_from_a_state_dict_file(task: ClassifyTask, tmp_path: Path) -> None:
    reference = models.architecture("resnet18")
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(1.0)  # weights no fresh model has
    torch.save(reference.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    built = task.build("resnet18", str(tmp_path / "resnet18-f37072fd.pth"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(built.state_dict().values(), reference.state_dict().values(), strict=True)
    )
    assert "pretrained resnet18-f37072fd.pth" in built.greenbench_start
    with pytest.raises(GreenbenchError, match="do not fit resnet34"):
        task.build("resnet34", str(tmp_path / "resnet18-f37072fd.pth"))
    (tmp_path / "code.pt").write_bytes(b"not a state dict")
    with pytest.raises(GreenbenchError, match="weights_only=True"):
        task.build("resnet18", str(tmp_path / "code.pt"))


def test_downloads_are_refused(task: ClassifyTask) -> None:
    from torchvision.models import ResNet18_Weights, resnet18

    with pytest.raises(GreenbenchError, match="never downloads"):
        resnet18(weights=ResNet18_Weights.DEFAULT)


def test_freeze_backbone_keeps_every_backbone_tensor_bit_identical(
    task: ClassifyTask, staged: Path, tmp_path: Path
) -> None:
    model = task.build("resnet18")
    models.replace_head(model, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = {"epochs": 2, "imgsz": 32, "batch": 8, "lr": 0.01, "freeze": "backbone"}
    checkpoint = task.train(model, staged, tmp_path / "out", args)
    after, info = models.load(checkpoint)
    changed = sorted(
        {k.rsplit(".", 1)[0] for k, v in after.state_dict().items() if not torch.equal(v, before[k])}
    )
    assert changed == ["fc"]  # BatchNorm running statistics included: nothing else moved
    assert info["trainable_params"] == 512 * 3 + 3 and info["total_params"] > 100 * info["trainable_params"]
    assert info["bn_running_stats"].startswith("frozen")

    model = task.build("resnet18")
    task.train(model, staged, tmp_path / "ft", {**args, "freeze": "none", "epochs": 1})
    assert not torch.equal(model.conv1.weight, before["conv1.weight"])


def test_augment_curriculum_runs_its_steps_and_the_plateau_rule_stops(
    task: ClassifyTask, staged: Path, tmp_path: Path
) -> None:
    steps = [
        {"epochs": 1},
        {"epochs": 1, "hflip": True, "rotate": 10.0},
        {"epochs": 4, "patience": 1, "color_jitter": 0.5, "translate": 0.1, "scale": 0.1},
    ]
    seen: list[tuple[int, int]] = []
    args = {"imgsz": 32, "batch": 8, "lr": 1e-7, "augment": steps}  # a tiny lr: val top-1 plateaus
    checkpoint = task.train(
        task.build("shufflenet_v2_x0_5"), staged, tmp_path, args, on_epoch=lambda e, n: seen.append((e, n))
    )
    info = models.load(checkpoint)[1]
    ran = [s["epochs_run"] for s in info["augment_steps"]]
    assert ran[:2] == [1, 1] and 2 <= ran[2] < 4  # stopped on the plateau before its 4 epochs
    assert seen[-1][0] == sum(ran) and all(n == 6 for _, n in seen)
    assert "val_top1" in info["history"][-1]


def test_train_arguments_are_checked() -> None:
    found = dict(
        check_args(
            {
                "optimizer": "lion",
                "freeze": "head",
                "epochs": 0,
                "lr": -1.0,
                "bogus": 1,
                "augment": [{"hflip": True}, {"epochs": 2, "color_jitter": 20}],
            }
        )
    )
    assert set(found) == {"optimizer", "freeze", "epochs", "lr", "bogus", "augment"}
    assert check_args({"epochs": 3, "lr": 1e-3, "freeze": "backbone", "augment": [{"epochs": 1}]}) == []


def test_diverging_training_is_a_clear_error(task: ClassifyTask, staged: Path, tmp_path: Path) -> None:
    with pytest.raises(GreenbenchError, match=r"training diverged.*lower 'lr'"):
        task.train(
            task.build("resnet18"),
            staged,
            tmp_path,
            {"epochs": 2, "imgsz": 32, "batch": 8, "lr": 1e30, "optimizer": "sgd"},
        )


def test_low_rank_at_full_rank_reproduces_the_layer() -> None:
    torch.manual_seed(0)
    linear, conv = nn.Linear(24, 10), nn.Conv2d(6, 8, 3, stride=2, padding=1)
    x, img = torch.randn(5, 24), torch.randn(2, 6, 9, 9)
    with torch.no_grad():
        assert torch.allclose(factor_layer(linear, 10)(x), linear(x), atol=1e-5)
        assert torch.allclose(factor_layer(conv, 8)(img), conv(img), atol=1e-5)


def test_low_rank_cuts_params_as_computed_and_round_trips(task: ClassifyTask, tmp_path: Path) -> None:
    model = task.build("resnet18")
    before = count_params(model)
    layers = factorize(model, 0.25, None, "all", protected={"fc"})
    replaced = [e for e in layers if e["replaced"]]
    saved = sum(e["weights_before"] - e["weights_after"] for e in replaced)
    assert replaced and before - count_params(model) == saved
    for e in replaced:
        rows, cols = e["shape"][0], math.prod(e["shape"][1:])
        assert e["rank"] == math.ceil(0.25 * min(rows, cols)) and e["weights_after"] == e["rank"] * (
            rows + cols
        )
    path = task.save(model, tmp_path / "lowrank.pt")
    loaded = task.load(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(x), model.eval()(x), atol=1e-5)


def test_energy_kept_picks_the_smallest_rank() -> None:
    from greenbench.tasks.classify.lowrank import rank_for

    s = torch.tensor([3.0, 2.0, 1.0, 0.0])  # energies 9, 4, 1 of 14
    assert rank_for(s, None, 9 / 14) == 1 and rank_for(s, None, 0.92) == 2 and rank_for(s, None, 1.0) == 3
    assert rank_for(s, 0.5, None) == 2


def test_pruned_model_round_trips_without_pickles(task: ClassifyTask, tmp_path: Path) -> None:
    import torch_pruning as tp

    model = task.build("resnet18").eval()
    prunable = task.prunable(model, None)
    example = torch.randn(1, 3, 64, 64)
    pruner = tp.pruner.MetaPruner(
        prunable.module,
        example,
        importance=tp.importance.MagnitudeImportance(),
        pruning_ratio=0.3,
        ignored_layers=prunable.protected,
    )
    pruner.step()
    path = prunable.save(prunable.module, tmp_path / "pruned.pt")
    structure = torch.load(path, weights_only=True)["structure"]
    assert any(s["type"] == "conv2d" for s in structure.values())
    loaded = task.load(path)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(example), model(example), atol=1e-5)
    assert count_params(loaded) < count_params(task.build("resnet18"))


def test_onnx_export_and_evaluation_agree_with_torch(
    task: ClassifyTask, staged: Path, tmp_path: Path
) -> None:
    model = task.build("resnet18")
    models.replace_head(model, 3)
    path = task.save(model, tmp_path / "m.pt")
    onnx = task.export_onnx(path, 32, dynamic=False, simplify=False, opset=None)
    torch_scores = task.evaluate(task.load(path), staged, 32, tmp_path)
    onnx_scores = task.evaluate(task.load(onnx), staged, 32, tmp_path)
    assert onnx_scores["top1"] == pytest.approx(torch_scores["top1"])
    assert onnx_scores["details"]["confusion"] == torch_scores["details"]["confusion"]
    assert json.dumps(onnx_scores)  # the details cross the process boundary as JSON


def test_calibration_inputs_are_preprocessed_train_images(task: ClassifyTask, staged: Path) -> None:
    inputs, facts = task.calibration_inputs(staged, 32, 5, seed=0)
    arrays = list(inputs)
    assert len(arrays) == facts["images"] == 5 and arrays[0].shape == (1, 3, 32, 32)
    assert facts["split"] == "train" and "normalise imagenet" in facts["preprocessing"]


def test_stage_params_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of rank_ratio or energy_kept"):
        LowRankStage.validate_params({"rank_ratio": 0.5, "energy_kept": 0.9}, ClassifyTask)
    with pytest.raises(ValueError, match="fraction in"):
        LowRankStage.validate_params({"rank_ratio": 1.5}, ClassifyTask)
    with pytest.raises(ValueError, match="needs 'teacher'"):
        DistillStage.validate_params({"temperature": 2.0}, ClassifyTask)
    with pytest.raises(ValueError, match="unknown classify training argument 'lr0'"):
        DistillStage.validate_params({"teacher": "t", "lr0": 0.1}, ClassifyTask)
    assert DistillStage.validate_params({"teacher": "t", "epochs": 2}, ClassifyTask) == {
        "teacher": "t",
        "temperature": 4.0,
        "alpha": 0.9,
        "epochs": 2,
    }


def test_a_stage_reading_another_variant_is_checked_and_keyed_on_it(tmp_path: Path) -> None:
    from greenbench.errors import SuiteError
    from greenbench.suite import load_suite
    from greenbench.suite.identity import stage_plan, variant_key

    def suite(variants: str) -> Path:
        path = tmp_path / "kd.yaml"
        path.write_text(
            "name: kd\ntask: classify\ndataset: {synthetic: {classes: 3}}\nbaseline: teacher\n"
            f"variants:\n{variants}"
        )
        return path

    teacher = "  teacher: {model: resnet18, stages: [{train: {epochs: 2}}]}\n"
    student = "  student: {model: resnet18, stages: [{distill: {teacher: TEACHER}}]}\n"
    for name, needle in (("techer", "unknown variant 'techer'"), ("student", "depends on 'student' itself")):
        with pytest.raises(SuiteError, match=needle):
            load_suite(suite(teacher + student.replace("TEACHER", name)))
    bare = "  bare: {model: resnet18}\n"
    with pytest.raises(SuiteError, match="has no stage"):
        load_suite(suite(teacher + bare + student.replace("TEACHER", "bare")))

    loaded = load_suite(suite(teacher + student.replace("TEACHER", "teacher")))
    assert loaded.variants_read("student") == ["teacher"]
    plan = stage_plan(loaded, "student", "data")
    assert [(p.variant, p.name) for p in plan] == [("teacher", "train"), ("student", "distill")]
    assert plan[1].uses == {"teacher": plan[0].key} and plan[1].input is None
    key = variant_key(loaded, "student", "data")
    edited = load_suite(
        suite(teacher.replace("epochs: 2", "epochs: 3") + student.replace("TEACHER", "teacher"))
    )
    assert stage_plan(edited, "student", "data")[1].key != plan[1].key  # a retrained teacher: a new student
    assert variant_key(edited, "student", "data") != key


def test_a_timm_model_by_name_trains_and_round_trips(
    task: ClassifyTask, staged: Path, tmp_path: Path
) -> None:
    model = task.build("timm:resnet10t")  # timm is a dependency: its models are named, never fetched
    checkpoint = task.train(model, staged, tmp_path, {"epochs": 1, "imgsz": 32, "batch": 8})
    loaded = task.load(checkpoint)
    assert models.num_classes(loaded) == 3 and count_params(loaded) == count_params(model)
    with pytest.raises(GreenbenchError, match="timm has no model 'nonesuch'"):
        task.build("timm:nonesuch")


def test_total_scope_reads_each_image_from_its_file_and_takes_top5(task: ClassifyTask, staged: Path) -> None:
    model = task.inference_module(task.build("resnet18"))
    inputs: list[Any] = []

    def forward(x: Any) -> list[Any]:
        inputs.append(x)
        with torch.no_grad():
            return [model(torch.from_numpy(x)).numpy()]

    call, what = task.end_to_end(staged, 32, forward)
    tests = len(data.read(staged).samples["test"])
    for _ in range(tests + 1):
        call()
    assert len(inputs) == tests + 1 and inputs[0].shape == (1, 3, 32, 32)
    assert np.array_equal(inputs[0], inputs[tests])  # in turn, from the first again
    assert not np.array_equal(inputs[0], inputs[1])
    assert "read and decode" in what and "top-5" in what


def test_latency_scope_keys_only_when_set_and_total_needs_batch_1(tmp_path: Path) -> None:
    from greenbench.errors import SuiteError
    from greenbench.suite import load_suite

    def suite(latency: str) -> Path:
        path = tmp_path / "s.yaml"
        path.write_text(
            "name: s\ntask: classify\ndataset: {synthetic: {classes: 3}}\nbaseline: a\n"
            f"measure: {{latency: {latency}}}\nvariants:\n  a: {{model: resnet18, stages: [train]}}\n"
        )
        return path

    default = load_suite(suite("{threads: 1}"))
    assert "scope" not in default.variant_config("a")["measure"]["latency"]  # older suites keep their keys
    assert load_suite(suite("{threads: 1, scope: model}")).variant_hash("a") == default.variant_hash("a")
    assert load_suite(suite("{threads: 1, scope: total}")).variant_hash("a") != default.variant_hash("a")
    with pytest.raises(SuiteError, match="scope 'total' times one image at a time"):
        load_suite(suite("{batch: 4, scope: total}"))
