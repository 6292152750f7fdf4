"""What the HTML and Markdown device reports share: the figures, the marks' legend, roofline cells."""

from __future__ import annotations

from dataclasses import dataclass

from greenbench.measure.stats import NOISY_IQR_RATIO
from greenbench.report import bar_plots, plots
from greenbench.report.device_report import SuiteSection

#: the marks a reader meets in tables and plots, and what each means
MARKS: tuple[tuple[str, str], ...] = (
    (
        "[estimated]",
        "energy modelled from process CPU time × a power model, not read from a hardware counter; "
        "hatched cells and bars, hollow markers in plots. Measured and estimated figures are never "
        "compared with each other.",
    ),
    (
        "(noisy)",
        f"the spread of the figure's blocks (IQR) exceeds {NOISY_IQR_RATIO:.0%} of its median, or its "
        "rounds disagree: read it with care (red outline, red labels in plots).",
    ),
    (
        "(unpaired)",
        "Δ % taken from two values measured apart (different runs or processes), not from "
        "time-adjacent blocks of the variant and its baseline: the host's speed may have moved "
        "between them (red outline, red labels in plots).",
    ),
    (
        "(CI includes 0)",
        "a paired Δ whose 95 % CI includes 0: these processes cannot tell it from the baseline "
        "(not a proof that they are equal: the CI says how large a difference is still possible).",
    ),
    (
        "[a, b]",
        "95 % confidence interval over processes: one median per fresh process (round), a "
        "t-interval on the log scale with rounds − 1 degrees of freedom.",
    ),
)

#: the method disclosure's first sentence, per overall energy method of a suite
BANNER = {
    "estimated": "Every energy figure of this suite is ESTIMATED from a model (no hardware energy counter "
    "was readable), not measured.",
    "mixed": "Some energy figures are measured by hardware counters and some ESTIMATED from a model: each "
    "energy cell says which; Δ % is never taken across methods.",
    "measured": "Every energy figure was read from hardware energy counters.",
    "none": "No energy figure was recorded.",
}


@dataclass(frozen=True)
class Figure:
    """One plot of a suite: a short name (file and anchor name), its caption and its SVG."""

    name: str
    caption: str
    svg: str


def figures(section: SuiteSection) -> list[Figure]:
    """Every plot of a suite, in report order."""
    acc, pts, s = section.accuracy_name, section.points, section.suite
    return [
        Figure(
            "accuracy-energy",
            f"{acc} against inference energy per image (gross), with the Pareto front",
            plots.accuracy_vs_energy(pts, acc, f"{s}: {acc} vs energy per image"),
        ),
        Figure(
            "accuracy-latency",
            f"{acc} against latency (median, 95 % CI)",
            plots.accuracy_vs_latency(pts, acc, f"{s}: {acc} vs latency"),
        ),
        Figure(
            "latency",
            "latency per variant with its 95 % CI",
            bar_plots.latency_per_variant(pts, f"{s}: latency per variant (95 % CI)"),
        ),
        Figure(
            "training-energy",
            "training energy per stage (stacked, gross) and the CO2 of it",
            bar_plots.training_energy(section.trainings, f"{s}: training energy per stage, with CO₂"),
        ),
        Figure(
            "complexity",
            "parameters, GFLOPs and model size",
            bar_plots.complexity(pts, f"{s}: parameters, GFLOPs and size"),
        ),
        *(
            Figure(
                f"confusion-{safe_name(c.variant, 40)}",
                f"{c.variant}: confusion matrix on the evaluation split (rows: true class; cells: its "
                "share of each prediction, counts written where they fit)",
                plots.confusion_matrix(c.classes, c.matrix, f"{s}: {c.variant}, confusion matrix"),
            )
            for c in section.confusions
        ),
    ]


ROOFLINE_HEADS = ["variant", "runtime", "achieved GFLOP/s", "% of peak"]


def roofline_cells(section: SuiteSection) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the roofline table (empty when the device has no stored peak)."""
    rows = [
        [
            r.variant,
            r.runtime or "—",
            "—" if r.achieved_gflops_per_s is None else f"{r.achieved_gflops_per_s:.2f}",
            "—" if r.pct_of_peak is None else f"{r.pct_of_peak:.1f} %",
        ]
        for r in section.roofline
    ]
    return ROOFLINE_HEADS, rows


_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def safe_name(text: str, limit: int = 60) -> str:
    """``text`` as a file or folder name on any OS: ``[A-Za-z0-9._-]`` only, no leading dot, at
    most ``limit`` characters. When that changes the text (or it is a reserved Windows name, or
    has capitals that a case-insensitive file system could merge), a hash of the whole text is
    appended, so two different texts never share a name."""
    import hashlib
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")[:limit].strip(".-")
    if name and name == text and name.split(".")[0] not in _RESERVED and name == name.lower():
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{name}-{digest}" if name else f"x-{digest}"
