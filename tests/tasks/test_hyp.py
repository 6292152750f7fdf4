"""YOLOv5 hyperparameter files as ultralytics training arguments: the study's fine-tuning file
shipped beside its suite, translated and listed; the finetune stage and the suite checks read it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from greenbench.errors import SuiteError
from greenbench.tasks.detect.finetune import FinetuneStage
from greenbench.tasks.detect.hyp import LOSS, NOT_CARRIED, check_hyp, loss_settings, translate

SUITES = Path(__file__).resolve().parents[2] / "suites"
HYP = SUITES / "yolo_thws_hyp_finetune_prune.yaml"


def test_the_authors_finetune_hyp_translates_and_lists_the_rest() -> None:
    hyp = check_hyp(yaml.safe_load(HYP.read_text(encoding="utf-8")))
    carried, dropped = translate(hyp)
    assert {k: carried[k] for k in ("lr0", "lrf", "momentum", "weight_decay", "mixup", "scale")} == {
        "lr0": 0.001, "lrf": 0.12, "momentum": 0.843, "weight_decay": 0.00036, "mixup": 0.243, "scale": 0.898,
    }  # fmt: skip
    assert carried["warmup_epochs"] == 2.0 and carried["flipud"] == 0.00856 and carried["degrees"] == 0.373
    assert set(dropped) == {"box", "cls", "cls_pw", "obj", "obj_pw", "iou_t", "anchor_t", "fl_gamma"}
    assert dropped["obj"].startswith("0.301: ") and "objectness" in dropped["obj"]
    assert not set(carried) & set(NOT_CARRIED) and len(carried) + len(dropped) == len(hyp) == 28


def test_a_model_with_the_anchor_based_head_takes_the_loss_settings() -> None:
    """With YOLOv5's head the file's loss gains, BCE positive weights and anchor_t go to its loss:
    neither training arguments nor dropped; the training arguments are the same as without."""
    hyp = check_hyp(yaml.safe_load(HYP.read_text(encoding="utf-8")))
    carried, dropped = translate(hyp, anchor_loss=True)
    assert carried == translate(hyp)[0]
    assert set(dropped) == {"iou_t", "fl_gamma"}
    loss = loss_settings(hyp)
    assert set(loss) == set(LOSS)
    assert loss == {
        "box": 0.0296,
        "cls": 0.243,
        "obj": 0.301,
        "cls_pw": 0.631,
        "obj_pw": 0.911,
        "anchor_t": 2.91,
    }
    assert len(carried) + len(dropped) + len(loss) == len(hyp)


def test_the_finetune_stage_takes_hyp_and_direct_arguments_win() -> None:
    hyp = {"lr0": 0.002, "obj": 0.3, "mixup": 0.1}
    params = FinetuneStage.validate_params({"epochs": 3, "mixup": 0.5, "hyp": hyp})
    assert params == {"epochs": 3, "mixup": 0.5, "hyp": hyp}  # lr0 comes from hyp: no default
    assert FinetuneStage.validate_params(params) == params  # cleaned params clean to themselves
    carried, _ = translate(params["hyp"])
    assert {**carried, **{k: v for k, v in params.items() if k != "hyp"}}["mixup"] == 0.5
    assert FinetuneStage.validate_params({"hyp": {"obj": 1.0}})["lr0"] == 0.001


@pytest.mark.parametrize(
    ("hyp", "match"),
    [
        ({"lr0": "fast"}, "'lr0'"),
        ({"obj": True}, "'obj'"),
        ({"lr_zero": 0.1}, "'lr_zero'"),
        ({"model": "x.pt"}, "'model'"),
        ({}, "'hyp'"),
        ("hyp.yaml", "'hyp' must be a mapping"),  # outside a suite, nothing reads a file
    ],
)
def test_bad_hyp_is_a_clear_error(hyp: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FinetuneStage.validate_params({"hyp": hyp})


def test_the_suite_checks_read_a_hyp_file_beside_the_suite(tmp_path: Path) -> None:
    from greenbench.suite import load_suite
    from greenbench.suite.smoke import Overrides

    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "ft.yaml").write_text(yaml.safe_dump({"lr0": 0.003, "anchor_t": 2.9}))
    suite = {
        "name": "hyp", "task": "detect", "dataset": {"synthetic": {"classes": 2}},
        "baseline": "a",
        "variants": {
            "a": {"model": "yolov5n.yaml", "stages": ["train"]},
            "b": {"from": "a", "stages": [{"finetune": {"hyp": "ft.yaml"}}]},
        },
    }  # fmt: skip
    path = tmp_path / "suites" / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path, Overrides())
    assert loaded.variants["b"].stages[0].params == {"hyp": {"lr0": 0.003, "anchor_t": 2.9}}

    suite["variants"]["b"]["stages"] = [{"finetune": {"hyp": "missing.yaml"}}]  # type: ignore[index]
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(SuiteError, match=r"hyp file 'missing\.yaml' not found"):
        load_suite(path, Overrides())


def test_a_hyp_file_is_read_as_safely_as_a_suite(tmp_path: Path) -> None:
    """An alias bomb or a non-mapping in the hyp file is a problem naming the file and key."""
    from greenbench.suite import load_suite
    from greenbench.suite.smoke import Overrides

    (tmp_path / "suites").mkdir()
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    (tmp_path / "suites" / "bomb.yaml").write_text(bomb)
    (tmp_path / "suites" / "list.yaml").write_text("- lr0\n- 0.1\n")
    for name, match in (("bomb.yaml", r"hyp file 'bomb\.yaml'"), ("list.yaml", "'hyp' must be a mapping")):
        suite = {
            "name": "hyp", "task": "detect", "dataset": {"synthetic": {"classes": 2}}, "baseline": "a",
            "variants": {
                "a": {"model": "yolov5n.yaml", "stages": ["train"]},
                "b": {"from": "a", "stages": [{"finetune": {"hyp": name}}]},
            },
        }  # fmt: skip
        path = tmp_path / "suites" / "s.yaml"
        path.write_text(yaml.safe_dump(suite))
        with pytest.raises(SuiteError, match=match) as e:
            load_suite(path, Overrides())
        assert "variants.b.stages" in str(e.value) or "finetune" in str(e.value)
