"""Hostile suites and data: no pickle without the opt-in, no label cache read from or written to
the user's data, no URL acted on. Every case runs the real CLI under the network guard, with a
timeout, and expects one paragraph naming the key and the file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from greenbench.tasks.detect.dataset_ref import check_dataset
from greenbench.tasks.detect.staging import staged_copy
from tests.hostile.payloads import (
    assert_no_network,
    assert_refused,
    checkpoint_payload,
    cli,
    label_cache_payload,
    snapshot,
    suite_text,
    write_image,
    yolo_dataset,
)

PICKLE = ("pickle", "allow_pickle: true")


@pytest.fixture(scope="module")
def payload_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One torch.save'd checkpoint payload per module (torch imports once)."""
    folder = tmp_path_factory.mktemp("payload")
    return checkpoint_payload(folder / "payload.pt", folder / "PWNED-by-checkpoint")


@pytest.fixture
def here(tmp_path: Path, payload_pt: Path) -> Path:
    """A folder with the payload under several names, a cfg file and a marker that must never appear."""
    for name in ("payload.pt", "PAYLOAD.PT", "payload.pth", "payload.bin", "teacher"):
        shutil.copyfile(payload_pt, tmp_path / name)
    (tmp_path / "cfg.yaml").write_text("model: payload.pt\nepochs: 1\n")
    return tmp_path


def validate(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
    (folder / "suite.yaml").write_text(text)
    return cli("validate", "suite.yaml", cwd=folder)


def test_payloads_are_live(tmp_path: Path, payload_pt: Path) -> None:
    """The payloads do run code when unpickled, so 'no marker' below means 'never unpickled'."""
    import torch

    marker = tmp_path / "from-cache"
    np.load(label_cache_payload(tmp_path / "labels" / "train.cache", marker), allow_pickle=True).item()
    assert marker.exists()
    torch.load(payload_pt, weights_only=False)
    assert (payload_pt.parent / "PWNED-by-checkpoint").exists()
    (payload_pt.parent / "PWNED-by-checkpoint").unlink()


# --- 1. no pickle without the opt-in ---------------------------------------------------------

STAGES = "    stages: [train]\n"
PICKLE_CASES = {
    "model_pt": ({"model": "payload.pt"}, ("variants.base.model", "payload.pt", *PICKLE)),
    "model_upper_case_suffix": ({"model": "PAYLOAD.PT"}, ("variants.base.model", "PAYLOAD.PT", *PICKLE)),
    "model_pth": ({"model": "payload.pth"}, ("variants.base.model", "payload.pth", *PICKLE)),
    "weights_any_suffix": (
        {"extra": "    weights: payload.bin\n" + STAGES},
        ("variants.base.weights", "payload.bin", *PICKLE),
    ),
    "defaults_pretrained": (
        {"defaults": ", pretrained: payload.pt"},
        ("defaults.pretrained", "payload.pt", "'base'", *PICKLE),
    ),
    "defaults_pretrained_quoted_bool": (
        {"defaults": ", pretrained: 'true'"},
        ("defaults.pretrained", "'true'", *PICKLE),
    ),
    "stage_pretrained": (
        {"extra": "    stages: [{train: {pretrained: payload.pt}}]\n"},
        ("variants.base.stages[0].train.pretrained", "payload.pt", *PICKLE),
    ),
    "defaults_distill_model": (
        {"defaults": ", distill_model: payload.pt"},
        ("defaults.distill_model", "payload.pt", *PICKLE),
    ),
    "stage_distill_model_without_suffix": (
        {"extra": "    stages: [{train: {distill_model: teacher}}]\n"},
        ("variants.base.stages[0].train.distill_model", "teacher", *PICKLE),
    ),
    "defaults_cfg_file": ({"defaults": ", cfg: cfg.yaml"}, ("defaults.cfg", "refused", "'defaults'")),
    "stage_cfg_file": (
        {"extra": "    stages: [{train: {cfg: cfg.yaml}}]\n"},
        ("variants.base.stages[0].train.cfg", "refused"),
    ),
    "stage_resume_checkpoint": (
        {"extra": "    stages: [{train: {resume: payload.pt}}]\n"},
        ("variants.base.stages[0].train.resume", "sets 'resume' itself"),
    ),
    "defaults_pretrained_reaches_a_variant_without_opt_in": (
        {
            "defaults": ", pretrained: payload.pt",
            "extra": "    allow_pickle: true\n" + STAGES + "  other: {from: base, stages: [train]}\n",
        },
        ("defaults.pretrained", "'other'", *PICKLE),
    ),
}


@pytest.mark.parametrize("case", PICKLE_CASES, ids=list(PICKLE_CASES))
def test_pickle_routes_need_the_opt_in(here: Path, case: str) -> None:
    parts, needles = PICKLE_CASES[case]
    out = validate(here, suite_text(**{"extra": STAGES, **parts}))
    assert_refused(out, 2, "suite.yaml:", *needles)
    if "'other'" in needles:  # only the variants lacking the opt-in are named
        assert "'base'" not in out.stderr
    assert not list(here.glob("PWNED*")) and not list(here.parent.glob("*/PWNED*"))
    assert_no_network(here)


def test_opted_in_pretrained_is_resolved_and_not_loaded_by_validate(here: Path) -> None:
    text = suite_text(extra="    allow_pickle: true\n    stages: [{train: {pretrained: payload.pt}}]\n")
    out = validate(here, text)
    assert out.returncode == 0, out.stderr
    assert not list(here.parent.glob("*/PWNED*"))


def test_opted_in_pretrained_that_is_missing_is_an_error_not_a_download(here: Path) -> None:
    text = suite_text(extra="    allow_pickle: true\n    stages: [{train: {pretrained: yolov8n.pt}}]\n")
    assert_refused(validate(here, text), 2, "train.pretrained", "'yolov8n.pt' not found", "never downloads")
    assert_no_network(here)


def test_pretrained_as_a_bool_is_no_pickle(here: Path) -> None:
    out = validate(here, suite_text(defaults=", pretrained: false", extra=STAGES))
    assert out.returncode == 0, out.stderr


class CapturingYolo:
    """Stands in for ``YOLO``: records what ``train`` was given and writes a last.pt."""

    def __init__(self) -> None:
        self.kwargs: dict[str, object] = {}
        self.trainer: object = None

    def add_callback(self, *_: object) -> None:
        pass

    def train(self, **kwargs: object) -> None:
        from types import SimpleNamespace

        self.kwargs = kwargs
        weights = Path(str(kwargs["project"])) / str(kwargs["name"]) / "weights"
        weights.mkdir(parents=True)
        (weights / "last.pt").write_bytes(b"x")
        self.trainer = SimpleNamespace(tloss=None, best=weights / "best.pt", last=weights / "last.pt")


def test_pretrained_path_is_never_renamed_or_fetched(  # no letter u: the tmp path must not hold one
    tmp_path: Path, clean_ultralytics_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenbench.errors import GreenbenchError
    from greenbench.tasks.detect.adapter import DetectAdapter

    monkeypatch.setenv("HF_HUB_OFFLINE", "")  # restored after the test: prepare_ultralytics sets it
    adapter = DetectAdapter(tmp_path / "work")
    teacher = tmp_path / "yolov5s.pt"  # ultralytics would rename it to yolov5su.pt and download that
    teacher.write_bytes(b"not loaded here")
    yolo = CapturingYolo()
    adapter.train(yolo, tmp_path / "d.yaml", tmp_path / "run", {"pretrained": str(teacher), "epochs": 1})
    from ultralytics.utils.checks import check_yolov5u_filename

    given = str(yolo.kwargs["pretrained"])
    assert check_yolov5u_filename(given, verbose=False) == given and Path(given).resolve() == teacher
    if check_yolov5u_filename(str(teacher), verbose=False) != str(teacher):
        assert "yolov5" not in Path(given).name  # a neutral link in the work folder
    adapter.train(yolo, tmp_path / "d.yaml", tmp_path / "run2", {"pretrained": True})
    assert yolo.kwargs["pretrained"] is True
    with pytest.raises(GreenbenchError, match="never downloads weights"):
        adapter.train(yolo, tmp_path / "d.yaml", tmp_path / "run3", {"distill_model": "yolov8n.pt"})


# --- 3. no network from a suite --------------------------------------------------------------

URL_CASES = {
    "defaults_cfg_https": ({"defaults": ", cfg: 'https://example.com/x.yaml'"}, "defaults.cfg"),
    "model_https": ({"model": "https://example.com/m.pt"}, "variants.base.model"),
    "model_upper_case_scheme": ({"model": "HTTPS://EXAMPLE.COM/M.PT"}, "variants.base.model"),
    "model_hf": ({"model": "hf://org/repo/m.pt"}, "variants.base.model"),
    "weights_https": ({"extra": "    weights: https://example.com/w.pt\n" + STAGES}, "variants.base.weights"),
    "weights_file_url": ({"extra": "    weights: file:///etc/passwd\n" + STAGES}, "variants.base.weights"),
    "stage_pretrained_https": (
        {"extra": "    stages: [{train: {pretrained: 'https://example.com/p.pt'}}]\n"},
        "variants.base.stages[0].train.pretrained",
    ),
    "stage_pretrained_one_slash": (
        {"extra": "    stages: [{train: {pretrained: 'https:/example.com/p.pt'}}]\n"},
        "variants.base.stages[0].train.pretrained",
    ),
    "defaults_pretrained_s3": ({"defaults": ", pretrained: 's3://bucket/k.pt'"}, "defaults.pretrained"),
    "defaults_list_item_ftp": ({"defaults": ", classes: [0, 'ftp://host/x']"}, "defaults.classes[1]"),
    "description_rtsp": (
        {"extra": "    description: rtsp://camera/stream\n" + STAGES},
        "variants.base.description",
    ),
    "dataset_path_https": (
        {"dataset": "path: https://example.com/data.yaml"},
        "dataset.path",
    ),
}


@pytest.mark.parametrize("case", URL_CASES, ids=list(URL_CASES))
def test_a_url_in_a_suite_is_refused_at_validate(here: Path, case: str) -> None:
    parts, key = URL_CASES[case]
    out = validate(here, suite_text(**{"extra": STAGES, **parts}))
    assert_refused(out, 2, "suite.yaml:", key, "is a URL", "never downloads")
    assert_no_network(here)


DATA_URL_CASES = {
    "train_https": ("train: https://example.com/train.zip\nval: images/val\n", "'train' is a URL"),
    "train_ultralytics_platform": ("train: ul://user/datasets/x\nval: images/val\n", "'train' is a URL"),
    "val_list_item": ("train: images/train\nval: [images/val, 'https://x/val.zip']\n", "'val[1]' is a URL"),
    "path_gs": ("path: gs://bucket/data\ntrain: images/train\nval: images/val\n", "'path' is a URL"),
    "names_entry": (
        "train: images/train\nval: images/val\nnames: ['http://x/a', b]\n",
        "'names[0]' is a URL",
    ),
}


@pytest.mark.parametrize("case", DATA_URL_CASES, ids=list(DATA_URL_CASES))
def test_a_url_in_a_data_yaml_is_refused_naming_the_users_file(tmp_path: Path, case: str) -> None:
    data = yolo_dataset(tmp_path / "user")
    body, needle = DATA_URL_CASES[case]
    data.write_text(body + ("" if "names" in body else "names: [a, b]\n"))
    out = validate(tmp_path, suite_text(dataset=f"path: {data}", extra=STAGES))
    assert_refused(out, 2, "dataset.path", str(data), needle, "never downloads")
    assert_no_network(tmp_path)


def test_a_url_line_in_an_image_list_is_refused(tmp_path: Path) -> None:
    data = yolo_dataset(tmp_path / "user")
    (data.parent / "train.txt").write_text("./images/train/0.png\nhttps://example.com/1.png\n")
    data.write_text("path: .\ntrain: train.txt\nval: images/val\nnames: [a, b]\n")
    out = validate(tmp_path, suite_text(dataset=f"path: {data}", extra=STAGES))
    assert_refused(out, 2, str(data), "line 2 of", "train.txt", "is a URL")
    assert_no_network(tmp_path)


def test_download_key_is_ignored_never_acted_on(tmp_path: Path) -> None:
    data = yolo_dataset(tmp_path / "user")
    data.write_text(data.read_text() + "download: https://example.com/x.zip\n")
    out = validate(tmp_path, suite_text(dataset=f"path: {data}", extra=STAGES))
    assert out.returncode == 0, out.stderr
    assert_no_network(tmp_path)


# --- 2. label caches never come from or go to the user's folder ------------------------------


def plant_caches(user: Path, marker: Path) -> None:
    """A live label cache wherever ultralytics would look for one beside the user's data."""
    for rel in ("labels/train.cache", "labels/val.cache", "images/train.cache", "train.cache",
                "labels/train/0.cache", "images/train/0.cache"):  # fmt: skip
        label_cache_payload(user / rel, marker)


def list_dataset(user: Path) -> Path:
    """A .txt-list dataset: train.txt with ./relative lines, val.txt with absolute paths."""
    data = yolo_dataset(user, images=4)
    train = sorted((user / "images" / "train").glob("*.png"))
    (user / "train.txt").write_text("".join(f"./images/train/{p.name}\n" for p in train))
    (user / "val.txt").write_text("".join(f"{p}\n" for p in sorted((user / "images" / "val").glob("*.png"))))
    data.write_text("path: .\ntrain: train.txt\nval: val.txt\nnames: [a, b]\n")
    return data


FORMS = {
    "folders": "path: .\ntrain: images/train\nval: images/val\n",
    "list_dot_relative": "train: train.txt\nval: val.txt\n",
    "list_plain_relative": "train: train_plain.txt\nval: val.txt\n",
    "list_absolute": "train: val.txt\nval: train_abs.txt\n",
    "list_of_folders": "path: .\ntrain: [images/train, images/val]\nval: images/val\n",
    "folder_and_list": "path: .\ntrain: [images/train, val.txt]\nval: val.txt\n",
}


def make_form(user: Path, form: str) -> Path:
    data = list_dataset(user)
    train = sorted((user / "images" / "train").glob("*.png"))
    (user / "train_plain.txt").write_text("".join(f"images/train/{p.name}\n" for p in train))
    (user / "train_abs.txt").write_text("".join(f"{p}\n" for p in train))
    data.write_text(FORMS[form] + "names: [a, b]\n")
    return data


@pytest.mark.parametrize("form", FORMS, ids=list(FORMS))
def test_staged_copy_keeps_labels_and_caches_in_the_work_folder(tmp_path: Path, form: str) -> None:
    user, work = tmp_path / "user", tmp_path / "work"
    data = make_form(user, form)
    plant_caches(user, tmp_path / "PWNED")
    staged = staged_copy(check_dataset(data), work)
    assert staged.is_relative_to(work.resolve())
    spec = yaml.safe_load(staged.read_text())
    assert set(spec) <= {"path", "train", "val", "test", "nc", "names", "channels"}
    for split in ("train", "val"):
        for folder in [spec[split]] if isinstance(spec[split], str) else spec[split]:
            images = Path(folder)
            labels = Path(str(images).replace(f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"))
            for path in (images, labels):  # real folders in the work folder: nothing resolves back
                assert (
                    path.is_dir() and not path.is_symlink() and path.resolve().is_relative_to(work.resolve())
                )
            assert sorted(p.stem for p in labels.iterdir()) == sorted(p.stem for p in images.iterdir())
            for link in [*images.iterdir(), *labels.iterdir()]:
                assert link.is_symlink() and link.resolve().is_relative_to(user)
    assert not [p for p in work.rglob("*") if p.name.endswith(".cache")]
    assert not (tmp_path / "PWNED").exists()


ULTRALYTICS_READS = """\
import sys
from pathlib import Path
from greenbench.tasks.detect.offline import prepare_ultralytics
prepare_ultralytics(Path(sys.argv[1]))
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import check_det_dataset
for staged in sys.argv[2:]:  # the last one is the control: a user's own data.yaml, not staged
    data = check_det_dataset(staged)
    for split in ("train", "val"):
        YOLODataset(img_path=data[split], data=data, imgsz=64, augment=False, prefix=split + ": ")
"""


@pytest.mark.slow
def test_ultralytics_reads_no_planted_cache_and_writes_none_beside_the_data(tmp_path: Path) -> None:
    """ultralytics' own dataset loader on every staged form: the planted caches stay unread, the
    caches it writes land in the work folder, the user's folders are unchanged. The control, the
    same loader on a user's own data.yaml, does unpickle them: the caches are planted where it looks."""
    marker = tmp_path / "PWNED"
    control = make_form(tmp_path / "control", "list_dot_relative")
    plant_caches(control.parent, tmp_path / "CONTROL-FIRED")
    work = tmp_path / "work"
    before, staged = {}, {}
    for form in FORMS:
        data = make_form(tmp_path / form, form)
        plant_caches(tmp_path / form, marker)
        before[form] = snapshot(tmp_path / form)
        staged[form] = staged_copy(check_dataset(data), work)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PYTHONPATH": str(Path(__file__).parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", ULTRALYTICS_READS, str(work), *map(str, staged.values()), str(control)],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert not marker.exists() and (tmp_path / "CONTROL-FIRED").exists()
    for form in FORMS:
        assert snapshot(tmp_path / form) == before[form], form
        assert list(staged[form].parent.glob("labels/*.cache")), form  # it did cache: in the work folder


E2E_SUITE = """\
name: cache-guard
task: detect
dataset: {{path: {data}}}
defaults: {{epochs: 1, imgsz: 64, batch: 4, workers: 0, optimizer: SGD, lr0: 0.01, warmup_epochs: 0,
           mosaic: 0.0, amp: false, val: false}}
measure:
  latency: {{warmup: 1, threads: 1}}
  protocol: {{rounds: 1, blocks: 2}}
  energy: {{idle_s: 0, skip_idle: true, min_window_s: 0.05}}
baseline: base
variants:
  base: {{model: yolov5n.yaml, stages: [train]}}
"""


@pytest.mark.slow
def test_run_on_an_image_list_never_unpickles_a_planted_cache_or_touches_the_data(tmp_path: Path) -> None:
    user = tmp_path / "user"
    data = list_dataset(user)
    for i in range(4, 8):  # a few more images: one batch of 4 per epoch at least
        write_image(user / "images" / "train" / f"{i}.png", colour=(20 * i, 60, 90))
        (user / "labels" / "train" / f"{i}.txt").write_text(f"{i % 2} 0.4 0.6 0.3 0.5\n")
        with (user / "train.txt").open("a") as f:
            f.write(f"./images/train/{i}.png\n")
    marker = tmp_path / "PWNED"
    plant_caches(user, marker)
    before = snapshot(user)
    (tmp_path / "suite.yaml").write_text(E2E_SUITE.format(data=data))
    out = cli("run", "suite.yaml", "--store", str(tmp_path / "results" / "gb.db"), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-2000:]
    assert not marker.exists()
    assert snapshot(user) == before  # byte for byte, and no new file (no train.cache beside the labels)
    staged = list((tmp_path / "results" / "work" / "data").glob("*/data.yaml"))
    assert len(staged) == 1 and list(staged[0].parent.glob("labels/*.cache"))
    assert_no_network(tmp_path)
