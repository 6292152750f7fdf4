"""Switch off every network path of ultralytics and keep its files inside greenbench's work folder.

Call ``prepare_ultralytics(workdir)`` before the first ``import ultralytics`` in a process.
What each switch stops (ultralytics 8.4, see RECIPES.md):

- ``YOLO_OFFLINE=1``: the DNS online probe at import and the PyPI update check at train.
- a pre-written ``settings.json`` with ``sync: false`` and every integration off: analytics
  events and the ClearML/Comet/DVC/MLflow/Ray Tune/TensorBoard/W&B callbacks.
- ``Arial.ttf``/``Arial.Unicode.ttf`` copied from matplotlib's DejaVuSans into the config
  folder: ultralytics downloads these from GitHub on any train/val, ``YOLO_OFFLINE`` or not.
- ``YOLO_AUTOINSTALL=0``: no ``pip install`` at run time.
- ``YOLO_CONFIG_DIR``, ``MPLCONFIGDIR``, ``XDG_CACHE_HOME`` point into ``workdir``: settings,
  fonts, matplotlib and onnxruntime caches stay out of the user's home. ``TORCH_HOME`` stays
  the user's torch cache, where pretrained torchvision weights are looked up (never fetched).
- ``HF_HUB_OFFLINE=1``: Hugging Face hub lookups (timm backbones with pretrained weights) fail
  at once instead of trying the network.
Weights named by a ``*.pt`` path that is not on disk are refused before ultralytics sees them
(``tasks.detect.adapter.check_weights``): ultralytics would try to download them. A URL anywhere
in a suite or a user's data.yaml is refused at validate (``greenbench.offline.is_url``), before
anything could fetch it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

_SETTINGS_VERSION = "0.0.8"
_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


def _dejavu() -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    font = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.exists() else None


def offline_settings(workdir: Path) -> dict[str, object]:
    """The ultralytics settings greenbench uses: no sync, no integrations, folders in ``workdir``."""
    settings: dict[str, object] = {
        "settings_version": _SETTINGS_VERSION,
        "datasets_dir": str(workdir / "datasets"),
        "weights_dir": str(workdir / "weights"),
        "runs_dir": str(workdir / "runs"),
        "uuid": "greenbench-offline",
        "sync": False,
        "api_key": "",
        "openai_api_key": "",
        "vscode_msg": False,
        "openvino_msg": False,
    }
    settings.update(dict.fromkeys(_INTEGRATIONS, False))
    return settings


def prepare_ultralytics(workdir: Path) -> Path:
    """Set the environment so ultralytics makes no network call and writes only under ``workdir``.

    Returns the ultralytics config folder. Must run before ``import ultralytics``; if ultralytics
    is already imported, its settings are updated in place instead.
    """
    workdir = workdir.resolve()
    config_root = workdir / "ultralytics-config"
    config_dir = config_root / "Ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    # pretrained torchvision weights come from the user's torch cache (never downloaded, see
    # adapters.detect.refuse_downloads): pin it before XDG_CACHE_HOME moves into workdir
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    os.environ.setdefault("TORCH_HOME", str(Path(xdg) / "torch"))
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_root)
    os.environ.setdefault("MPLCONFIGDIR", str(workdir / "matplotlib"))
    os.environ.setdefault("XDG_CACHE_HOME", str(workdir / "cache"))

    font = _dejavu()
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = config_dir / name
        if font is not None and not target.exists():
            shutil.copyfile(font, target)

    settings = offline_settings(workdir)
    settings_file = config_dir / "settings.json"
    current: dict[str, object] = {}
    if settings_file.exists():
        try:
            current = json.loads(settings_file.read_text())
        except (OSError, ValueError):
            current = {}
    if current != settings:
        settings_file.write_text(json.dumps(settings, indent=2))

    if "ultralytics" in sys.modules:  # imported earlier in this process: fix it in place
        from ultralytics.utils import SETTINGS

        SETTINGS.update({k: v for k, v in settings.items() if k != "uuid"})
    return config_dir
