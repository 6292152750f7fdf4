"""--smoke, --data and --weights on a suite, and smoke records kept out of real tables."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from factories import make_measured_record

from greenbench.commands.table import SuiteRef, current_records, read_suite_ref, table_text
from greenbench.errors import SuiteError
from greenbench.store import Store
from greenbench.suite import load_suite
from greenbench.suite.smoke import SMOKE_EPOCHS, SMOKE_IMGSZ, Overrides
from greenbench.tasks.detect.synth import SynthSpec, synth_detection

THWS = Path(__file__).resolve().parents[1] / "suites" / "yolo_thws.yaml"
NAMES = ["chair", "person", "tree", "robot", "door", "fire extinguisher", "screen", "clock", "podium"]
NAMES += ["projector", "backpack", "laptop", "bottle", "window"]


def test_the_study_without_its_data_says_where_it_goes_and_how_to_smoke() -> None:
    with pytest.raises(SuiteError) as e:
        load_suite(THWS)
    text = str(e.value)
    assert "YOLO format" in text and "fire extinguisher" in text and "14 classes" in text
    assert "--smoke" in text and "--data" in text


def test_smoke_keeps_the_dag_on_synthetic_data_with_the_suite_names() -> None:
    suite = load_suite(THWS, Overrides(smoke=True))
    real_names = set(suite.variants)
    assert suite.smoke is not None and suite.dataset.synthetic is not None
    assert suite.dataset.names == NAMES and suite.dataset.synthetic.classes == 14
    assert suite.defaults["epochs"] == SMOKE_EPOCHS and suite.defaults["imgsz"] == SMOKE_IMGSZ
    for spec in suite.variants.values():
        for stage in spec.stages:
            assert stage.params.get("epochs", SMOKE_EPOCHS) == SMOKE_EPOCHS
    assert suite.variants["yolov5s"].weights is None  # not on disk: trained from scratch, said so
    assert any("yolov5su.pt" in note and "from scratch" in note for note in suite.smoke["notes"])
    assert set(suite.variants) == real_names and len(real_names) == 27
    assert suite.variant_config("yolov5s").get("smoke") is True


def _thws_like(tmp_path: Path, names: list[str]) -> Path:
    spec = SynthSpec(classes=len(names), images=10, imgsz=64, names=tuple(names))
    return synth_detection(tmp_path / "data", spec)


def test_data_override_is_checked_against_the_class_names(tmp_path: Path) -> None:
    good = _thws_like(tmp_path / "good", NAMES)
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"not read by validation")
    suite = load_suite(THWS, Overrides(data=good, weights=weights))
    assert suite.dataset.path == str(good.resolve()) and suite.smoke is None
    assert suite.variants["yolov5s"].weights == str(weights.resolve())
    wrong = _thws_like(tmp_path / "wrong", [f"c{i}" for i in range(14)])
    with pytest.raises(SuiteError, match="expects the classes chair"):
        load_suite(THWS, Overrides(data=wrong, weights=weights))


def test_synthetic_names_reach_data_yaml(tmp_path: Path) -> None:
    text = _thws_like(tmp_path, NAMES).read_text()
    assert '"fire extinguisher"' in text and "nc: 14" in text


def test_smoke_records_never_share_a_table_with_real_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    store.add(make_measured_record("base", suite="s", latency_ms=10.0))
    store.add(make_measured_record("small", suite="s", latency_ms=5.0))
    store.add(make_measured_record("base", suite="s", smoke={"notes": ["synthetic"]}, run_id="r2"))
    ref = SuiteRef("s", ("base", "small"), "base", "detect", "cpu")
    real, _ = current_records(store, ref, "dev")
    smoke, _ = current_records(store, dataclasses.replace(ref, smoke=True), "dev")
    assert [r.run_id for r in real] == ["r1", "r1"] and all(r.smoke is None for r in real)
    assert [r.variant for r in smoke] == ["base"] and smoke[0].smoke is not None
    assert "SMOKE RUN" in table_text(store, dataclasses.replace(ref, smoke=True), "dev", "md")
    assert "SMOKE RUN" not in table_text(store, ref, "dev", "md")
    assert "SMOKE RUN" in table_text(store, dataclasses.replace(ref, smoke=True), "dev", "term")  # its footer


def test_tables_are_grouped_with_the_baseline_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    stages = {
        "p30": [{"name": "prune", "params": {"ratio": 0.3}}],
        "mnv2": [{"name": "train", "params": {}}],
    }
    for v in ("base", "p30", "mnv2"):
        store.add(make_measured_record(v, suite="s", stages=stages.get(v, [])))
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(
        "name: s\nbaseline: base\nvariants:\n  base: {table: pruning}\n  p30: {table: pruning}\n"
        "  mnv2: {table: backbones}\n"
    )
    ref = read_suite_ref(suite_file)
    assert ref.tables == (("pruning", ("base", "p30")), ("backbones", ("mnv2",)))
    md = table_text(store, ref, "dev", "md")
    pruning, backbones = md.split("### Table: backbones")
    assert "### Table: pruning" in pruning and "prune_ratio" in pruning and "0.3" in pruning
    assert "base (baseline)" in backbones and "mnv2" in backbones and "p30" not in backbones
    csv_text = table_text(store, ref, "dev", "csv")
    lines = csv_text.splitlines()
    assert lines[0].startswith("table,variant,parent,delta_vs,status,prune_ratio") and len(lines) == 1 + 3
    assert [line.split(",")[0] for line in lines[1:]] == ["pruning", "pruning", "backbones"]
    term = table_text(store, ref, "dev", "term")
    assert term.startswith("Table: pruning") and "\nTable: backbones\n" in term
    tables = json.loads(table_text(store, ref, "dev", "json"))["tables"]
    assert [(t["table"], [r["variant"] for r in t["rows"]]) for t in tables] == [
        ("pruning", ["base", "p30"]),
        ("backbones", ["base", "mnv2"]),
    ]


def test_recipe_columns_come_from_the_whole_lineage(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    lineage = [
        {"variant": "base", "stages": [{"name": "train", "params": {}}]},
        {"variant": "sparse", "stages": [{"name": "sparse_train", "params": {"lambda": 5e-4}}]},
        {"variant": "p50", "stages": [{"name": "prune", "params": {"ratio": 0.5}}]},
        {"variant": "ft", "stages": [{"name": "finetune", "params": {"lr0": 0.001}}]},
    ]
    store.add(make_measured_record("base", suite="s"))
    store.add(
        make_measured_record(
            "ft",
            suite="s",
            parent="p50",
            stages=[{"name": "finetune", "params": {"lr0": 0.001}}],
            measurement={"lineage": lineage},
        )
    )
    ref = SuiteRef("s", ("base", "ft"), "base", "detect", "cpu")
    rows = table_text(store, ref, "dev", "csv").splitlines()
    head, ft = rows[0].split(","), rows[2].split(",")
    assert ft[head.index("sparsity_λ")] == "0.0005" and ft[head.index("prune_ratio")] == "0.5"


def test_smoke_takes_as_many_classes_as_the_generator_draws(tmp_path: Path) -> None:
    from greenbench.suite import MAX_SYNTHETIC_CLASSES
    from greenbench.suite.smoke import SMOKE_MAX_CLASSES
    from greenbench.tasks.detect.synth import MAX_CLASSES

    assert SMOKE_MAX_CLASSES == MAX_SYNTHETIC_CLASSES == MAX_CLASSES
    for n, ok in ((80, True), (MAX_CLASSES + 1, False)):
        names = ", ".join(f"c{i}" for i in range(n))
        path = tmp_path / f"coco{n}.yaml"
        path.write_text(
            f"name: coco\ntask: detect\ndataset: {{path: coco.yaml, names: [{names}]}}\n"
            "baseline: a\nvariants:\n  a: {model: yolov5n.yaml, stages: [train]}\n"
        )
        if ok:
            assert load_suite(path, Overrides(smoke=True)).dataset.synthetic.classes == n  # type: ignore[union-attr]
        else:
            with pytest.raises(SuiteError, match="at most 96"):
                load_suite(path, Overrides(smoke=True))
