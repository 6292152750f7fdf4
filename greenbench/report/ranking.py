"""Ranks of ``load_results`` rows, only among rows that compare.

A rank group is one suite config (``suite_config``: the same task, baseline, data and measure
settings) on one device with one energy method. Accuracy on other data does not compare, a
figure from another device does not, and an energy figure modelled from CPU time does not
compare with one read from hardware counters: a measured row is never ranked against an
estimated one. ``RANK_RULES`` says each rule in words; a group whose every energy figure is the
CPU-time model carries ``CPU_TIME_CAVEAT`` as its note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from greenbench.report.pareto import pareto_rank

_WITHIN = "within each rank_group (one suite config on one device with one energy method): "

RANK_RULES: dict[str, str] = {
    "pareto": (
        _WITHIN + "Pareto rank (non-dominated layer, 1 = front) of accuracy (higher is better) "
        "against energy_j_per_image (lower is better), ties broken by latency_ms_median (lower is "
        "better); rows without accuracy or energy are unranked"
    ),
    "energy": (
        _WITHIN + "energy_j_per_image, lowest first, ties broken by latency_ms_median; rows "
        "without energy are unranked"
    ),
    "latency": (
        _WITHIN + "latency_ms_median, lowest first, ties broken by energy_j_per_image; rows "
        "without latency are unranked"
    ),
    "accuracy": (
        _WITHIN + "accuracy, highest first, ties broken by energy_j_per_image; rows without "
        "accuracy are unranked"
    ),
}

#: the note of a group whose energy figures are all the CPU-time model
CPU_TIME_CAVEAT = (
    "every energy_j_per_image here is estimated (CPU-time model: process CPU time × W/core), so "
    "where energy ranks, CPU time ranks"
)


@dataclass(frozen=True)
class RankGroup:
    """The rows ranked together: one suite config on one device with one energy method."""

    name: str  # suite/suite_config/device_id/energy_method, the rows' rank_group
    suite: str
    suite_config: str
    device_id: str
    energy_method: str | None
    rows: int
    note: str | None  # CPU_TIME_CAVEAT where it applies

    def to_dict(self) -> dict[str, Any]:
        """As the leaderboard's metadata states it."""
        return {
            "rank_group": self.name,
            "suite": self.suite,
            "suite_config": self.suite_config,
            "device_id": self.device_id,
            "energy_method": self.energy_method,
            "rows": self.rows,
            "note": self.note,
        }


def group_name(row: dict[str, Any]) -> str:
    """``suite/suite_config/device_id/energy_method`` of a row (``none``: no energy figure)."""
    return f"{row['suite']}/{row['suite_config']}/{row['device_id']}/{row['energy_method'] or 'none'}"


def _rank_key(row: dict[str, Any], rule: str) -> tuple[float, ...] | None:
    """The sort key of ``row`` under ``rule`` (lower first), or None when it cannot be ranked."""
    inf = math.inf
    lat = row["latency_ms_median"] if row["latency_ms_median"] is not None else inf
    energy = row["energy_j_per_image"]
    if rule == "pareto":
        return None if row["pareto_rank"] is None else (row["pareto_rank"], lat)
    if rule == "energy":
        return None if energy is None else (energy, lat)
    if rule == "latency":
        return None if row["latency_ms_median"] is None else (lat, energy if energy is not None else inf)
    if rule == "accuracy":
        acc = row["accuracy"]
        return None if acc is None else (-acc, energy if energy is not None else inf)
    raise ValueError(f"unknown rank rule {rule!r}; expected one of {', '.join(RANK_RULES)}")


def _note(group: list[dict[str, Any]]) -> str | None:
    from greenbench.measure.energy.meter import cpu_time_only

    rated = [g for g in group if g.get("energy_j_per_image") is not None]
    only = rated and all(cpu_time_only(g.get("energy_source")) for g in rated)
    return CPU_TIME_CAVEAT if only else None


def rank_rows(
    rows: list[dict[str, Any]], rule: str = "pareto"
) -> tuple[list[dict[str, Any]], list[RankGroup]]:
    """Pareto and rule ranks within each rank group (``rank_group`` set on every row); rows
    sorted by suite, group, rank (unranked last), variant, runtime, runtime options, device id;
    the groups in that order."""
    if rule not in RANK_RULES:
        raise ValueError(f"unknown rank rule {rule!r}; expected one of {', '.join(RANK_RULES)}")
    for row in rows:
        row["rank_group"] = group_name(row)
    out: list[dict[str, Any]] = []
    groups: list[RankGroup] = []
    order = {
        row["rank_group"]: (row["suite"], row["suite_config"], row["device_id"], row["energy_method"] or "")
        for row in rows
    }
    for name in sorted(order, key=lambda n: (order[n], n)):
        group = [row for row in rows if row["rank_group"] == name]
        layers = pareto_rank([g["accuracy"] for g in group], [g["energy_j_per_image"] for g in group])
        for g, layer in zip(group, layers, strict=True):
            g.update(pareto_rank=layer, pareto_optimal=layer == 1)
        keyed = sorted(
            ((_rank_key(g, rule), g) for g in group),
            key=lambda kg: (kg[0] is None, kg[0] or (), kg[1]["variant"], kg[1]["runtime"] or "",
                            kg[1]["runtime_options"] or "", kg[1]["device_id"]),
        )  # fmt: skip
        previous: tuple[tuple[float, ...] | None, int | None] = (None, None)
        for position, (key, g) in enumerate(keyed, start=1):
            if key is not None:  # competition ranking: equal keys share the first one's rank
                g["rank"] = previous[1] if key == previous[0] else position
            previous = (key, g["rank"])
            out.append(g)
        first = group[0]
        groups.append(
            RankGroup(
                name, first["suite"], first["suite_config"], first["device_id"], first["energy_method"],
                len(group), _note(group),
            )
        )  # fmt: skip
    return out, groups
