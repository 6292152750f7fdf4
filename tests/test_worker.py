"""The worker's stage cache: only a complete marker whose checkpoint exists counts."""

from __future__ import annotations

import json
from pathlib import Path

from greenbench.run.worker import _cached_stage


def test_cached_stage_needs_a_complete_marker_and_the_checkpoint(tmp_path: Path) -> None:
    marker = tmp_path / "stage.json"
    assert _cached_stage(marker) is None  # never written
    marker.write_text('{"checkpoint": "')  # cut short by a crash
    assert _cached_stage(marker) is None
    ckpt = tmp_path / "best.pt"
    energy = {
        "duration_s": 1.0,
        "domains": [{"domain": "cpu", "energy_j": 2.0, "method": "estimated", "source": "e"}],
    }
    marker.write_text(json.dumps({"checkpoint": str(ckpt), "energy": energy}))
    assert _cached_stage(marker) is None  # the checkpoint was deleted
    ckpt.write_bytes(b"weights")
    assert _cached_stage(marker) == {"checkpoint": str(ckpt), "energy": energy}
    marker.write_text(json.dumps({"checkpoint": str(ckpt), "energy": {}}))
    assert _cached_stage(marker) is None  # a reading that cannot be read back is no cache
