"""Ultralytics' network switches and file locations, set before it is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from greenbench.tasks.detect.offline import offline_settings, prepare_ultralytics


def test_prepare_writes_settings_fonts_and_env(tmp_path: Path, clean_ultralytics_env: None) -> None:
    config = prepare_ultralytics(tmp_path)
    assert config == tmp_path.resolve() / "ultralytics-config" / "Ultralytics"
    settings = json.loads((config / "settings.json").read_text())
    assert settings["sync"] is False
    for key in ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb"):
        assert settings[key] is False
    assert settings["runs_dir"].startswith(str(tmp_path.resolve()))
    assert (config / "Arial.ttf").stat().st_size > 10_000
    assert (config / "Arial.Unicode.ttf").exists()
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "0"
    assert os.environ["MPLCONFIGDIR"].startswith(str(tmp_path.resolve()))


def test_ultralytics_imported_after_prepare_keeps_our_settings(tmp_path: Path) -> None:
    """In a fresh interpreter: ultralytics must read our settings file, not write its own."""
    code = (
        "import sys; from pathlib import Path;"
        "from greenbench.tasks.detect.offline import prepare_ultralytics;"
        f"prepare_ultralytics(Path({str(tmp_path)!r}));"
        "from ultralytics.utils import SETTINGS, ONLINE, USER_CONFIG_DIR;"
        "print(SETTINGS['sync'], SETTINGS['raytune'], ONLINE, USER_CONFIG_DIR)"
    )
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    sync, raytune, online, config_dir = out.stdout.split()
    assert (sync, raytune, online) == ("False", "False", "False")
    assert config_dir.startswith(str(tmp_path.resolve()))
    assert not (tmp_path / "home" / ".config").exists()
    on_disk = json.loads((Path(config_dir) / "settings.json").read_text())
    assert on_disk == offline_settings(tmp_path.resolve())
