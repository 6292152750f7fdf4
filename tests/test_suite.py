"""Suite manifests: schema defaults, the variant DAG, hashes, and file:line errors."""

from __future__ import annotations

import hashlib
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from greenbench.errors import SuiteError
from greenbench.suite import StageSpec, Suite, load_suite
from greenbench.tasks.detect.synth import SynthSpec, synth_detection
from greenbench.tasks.detect.ultra_args import RESERVED, builtin_model_cfg, train_arg_names

BROKEN = Path(__file__).parent / "suites_broken"
EXPECT = re.compile(r"#\s*expect:\s*line=(\d+)(?:\s+key=(\S+))?")

MODEL_YAML = """\
nc: 80
scales:
  n: [0.33, 0.25, 1024]
backbone: []
head: []
"""

VALID = """\
name: demo
task: detect
dataset:
  synthetic: {classes: 2, images: 20}
defaults:
  imgsz: 64
  epochs: 1
measure:
  protocol: {blocks: 5}
baseline: base
variants:
  small:
    from: base
    stages:
      - train: {epochs: 3}
    description: fine-tuned
  base:
    model: yolov8n.yaml
    stages: [train]
  local:
    model: models/tiny.yaml
  pretrained:
    model: weights/tiny.pt
    allow_pickle: true
  smaller:
    from: small
    stages:
      - train:
"""


def write(folder: Path, text: str, name: str = "demo.yaml") -> Path:
    """A suite file at ``folder/suites/name``, with a local model config and weights beside."""
    (folder / "suites").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    (folder / "models" / "tiny.yaml").write_text(MODEL_YAML, encoding="utf-8")
    (folder / "suites" / "weights").mkdir(exist_ok=True)
    (folder / "suites" / "weights" / "tiny.pt").write_bytes(b"not really a checkpoint")
    path = folder / "suites" / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    return load_suite(write(tmp_path, VALID))


def test_valid_suite_loads_with_defaults(suite: Suite, tmp_path: Path) -> None:
    path = tmp_path / "suites" / "demo.yaml"
    assert suite.path == path.resolve()
    assert suite.source_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert suite.dataset.synthetic is not None
    assert (suite.dataset.synthetic.classes, suite.dataset.synthetic.imgsz) == (2, 128)
    assert suite.measure.device == "cpu"
    assert suite.measure.protocol.blocks == 5
    assert suite.measure.latency.warmup == 5
    assert suite.measure.energy.meters == ["auto"]
    assert suite.measure.carbon.country == "DEU"
    assert suite.measure.carbon.pue == 1.0
    assert suite.defaults == {"imgsz": 64, "epochs": 1}


def test_stages_are_normalised(suite: Suite) -> None:
    assert suite.variants["base"].stages == [StageSpec(name="train")]
    assert suite.variants["small"].stages == [StageSpec(name="train", params={"epochs": 3})]
    assert suite.variants["smaller"].stages == [StageSpec(name="train", params={})]


def test_models_and_weights_resolve(suite: Suite, tmp_path: Path) -> None:
    assert suite.variants["base"].model == "yolov8n.yaml"  # built-in: kept for ultralytics
    assert suite.variants["local"].model == str((tmp_path / "models" / "tiny.yaml").resolve())
    pt = tmp_path / "suites" / "weights" / "tiny.pt"
    assert suite.variants["pretrained"].model == str(pt.resolve())
    assert suite.variants["small"].from_ == "base"


def test_dataset_path_is_made_absolute(tmp_path: Path) -> None:
    # a real dataset: validate checks that every split exists and holds usable images
    data = synth_detection(tmp_path / "suites" / "data", SynthSpec(classes=2, images=10, imgsz=32))
    text = VALID.replace("synthetic: {classes: 2, images: 20}", f"path: data/{data.name}")
    suite = load_suite(write(tmp_path, text))
    assert suite.dataset.path == str(data.resolve())
    assert suite.dataset.synthetic is None


def test_a_run_reuses_the_dataset_walk_validation_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import greenbench.tasks.detect.dataset_ref
    from greenbench.suite.identity import dataset_ref

    data = synth_detection(tmp_path / "suites" / "data", SynthSpec(classes=2, images=10, imgsz=32))
    suite = load_suite(
        write(tmp_path, VALID.replace("synthetic: {classes: 2, images: 20}", f"path: data/{data.name}"))
    )
    walks: list[Path] = []
    real = greenbench.tasks.detect.dataset_ref.check_dataset
    monkeypatch.setattr(
        greenbench.tasks.detect.dataset_ref, "check_dataset", lambda p: walks.append(p) or real(p)
    )
    ref = dataset_ref(suite)
    assert ref is suite.checked_data() and walks == []  # one walk per run, not two
    assert ref.fingerprint == real(Path(suite.dataset.path or "")).fingerprint


def test_order_puts_parents_first_and_keeps_file_order(suite: Suite) -> None:
    assert suite.order() == ["base", "small", "local", "pretrained", "smaller"]


def test_lineage_and_root_model(suite: Suite) -> None:
    assert suite.lineage("smaller") == ["base", "small", "smaller"]
    assert suite.lineage("base") == ["base"]
    assert suite.root_model("smaller") is suite.variants["base"]


def test_variant_config_leaves_out_names(suite: Suite) -> None:
    config = suite.variant_config("smaller")
    assert set(config) == {"task", "dataset", "defaults", "measure", "lineage"}
    assert [step["stages"] for step in config["lineage"]] == [
        [{"name": "train", "params": {}}],
        [{"name": "train", "params": {"epochs": 3}}],
        [{"name": "train", "params": {}}],
    ]
    assert "fine-tuned" not in str(config)
    assert re.fullmatch(r"[0-9a-f]{16}", suite.variant_hash("smaller"))


def _hashes(tmp_path: Path, text: str) -> dict[str, str]:
    suite = load_suite(write(tmp_path, text))
    return {name: suite.variant_hash(name) for name in suite.variants}


def test_hash_follows_what_determines_the_result(tmp_path: Path) -> None:
    before = _hashes(tmp_path, VALID)
    assert before == _hashes(tmp_path, VALID)  # stable across loads
    described = _hashes(tmp_path, VALID.replace("fine-tuned", "something else"))
    assert described == before
    changed = _hashes(tmp_path, VALID.replace("{epochs: 3}", "{epochs: 4}"))
    assert changed["small"] != before["small"]
    assert changed["smaller"] != before["smaller"]  # the child follows its parent
    assert changed["base"] == before["base"]
    measured = _hashes(tmp_path, VALID.replace("blocks: 5", "blocks: 6"))
    assert measured["base"] != before["base"]


def test_hash_follows_local_file_content_not_location(tmp_path: Path) -> None:
    before = _hashes(tmp_path / "a", VALID)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert _hashes(tmp_path / "b", VALID) == before
    (tmp_path / "b" / "models" / "tiny.yaml").write_text(MODEL_YAML + "# edited\n", "utf-8")
    suite = load_suite(tmp_path / "b" / "suites" / "demo.yaml")
    assert suite.variant_hash("local") != before["local"]
    assert suite.variant_hash("base") == before["base"]


def _broken_cases() -> list[Path]:
    return sorted(BROKEN.glob("*.yaml"))


def test_broken_corpus_is_complete() -> None:
    assert len(_broken_cases()) >= 15


@pytest.mark.parametrize("path", _broken_cases(), ids=lambda p: p.stem)
def test_broken_suite_names_file_line_and_key(path: Path) -> None:
    expect = EXPECT.match(path.read_text(encoding="utf-8"))
    assert expect, f"{path.name} needs a first line '# expect: line=N key=K'"
    line, key = expect.groups()
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert path.name in message
    assert f":{line}:" in message
    if key:
        assert f": {key}: " in message
    assert "Traceback" not in message
    assert info.value.__cause__ is None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"nope\.yaml: no such file"):
        load_suite(tmp_path / "nope.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"demo\.yaml:1: the top level is a list; expected"):
        load_suite(write(tmp_path, "- name: demo\n"))


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = VALID.replace("  imgsz: 64\n", "  imgsz: 64\n  imgsz: 32\n")
    with pytest.raises(SuiteError, match=r"demo\.yaml:7: defaults\.imgsz: duplicate key.*line 6"):
        load_suite(write(tmp_path, text))


def test_loader_fields_cannot_come_from_yaml(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"demo\.yaml:1: source_hash: unknown key"):
        load_suite(write(tmp_path, "source_hash: abc\n" + VALID))


def test_problems_are_listed_one_per_line_and_capped(tmp_path: Path) -> None:
    text = VALID.replace("measure:\n  protocol: {blocks: 5}", (
        "measure:\n  device: tpu\n  latency: {min_repeats: 1, warmup: -1, batch: 0}\n"
        "  carbon: {pue: 0.5, country: deu}"
    ))  # fmt: skip
    with pytest.raises(SuiteError) as info:
        load_suite(write(tmp_path, text))
    rows = str(info.value).splitlines()
    assert len(rows) == 6 and rows[-1] == "(and 1 more problem)"
    assert all(re.match(r".*demo\.yaml:\d+: measure\.\S+: ", row) for row in rows[:5])


def test_stage_params_are_checked_by_the_stage(tmp_path: Path) -> None:
    text = VALID.replace("{epochs: 3}", "{epochs: 3, device: cpu}")
    with pytest.raises(
        SuiteError, match=r"variants\.small\.stages\[0\]\.train\.device: greenbench sets 'device'"
    ):
        load_suite(write(tmp_path, text))


def test_builtin_model_names_follow_ultralytics_renames() -> None:
    for name in ("yolov8n.yaml", "yolov5nu.yaml", "yolov5s.yaml", "yolo11n-seg.yaml"):
        assert builtin_model_cfg(name) is not None, name
    assert builtin_model_cfg("yolov5n6.yaml").name == "yolov5-p6.yaml"  # type: ignore[union-attr]
    assert builtin_model_cfg("yolov8q.yaml") is None
    assert builtin_model_cfg("models/yolov8n.yaml") is None


def test_train_arg_names_come_from_ultralytics_defaults() -> None:
    names = train_arg_names()
    assert {"epochs", "imgsz", "lr0", "batch"} <= names
    assert RESERVED <= names


def test_outside_pickle_needs_explicit_opt_in(tmp_path: Path) -> None:
    (tmp_path / "w.pt").write_bytes(b"pickle")
    text = textwrap.dedent(
        """\
        name: s
        task: detect
        dataset: {synthetic: {}}
        baseline: a
        variants:
          a: {model: yolov8n.yaml, weights: w.pt}
        """
    )
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(text)
    with pytest.raises(SuiteError, match=r"s.yaml:6: variants\.a\.weights: 'w.pt' is .* pickle") as e:
        load_suite(suite_file)
    assert "allow_pickle: true" in str(e.value)
    suite_file.write_text(text.replace("weights: w.pt}", "weights: w.pt, allow_pickle: true}"))
    assert load_suite(suite_file).variants["a"].weights == str(tmp_path / "w.pt")
