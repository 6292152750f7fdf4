"""The columns of ``load_results`` and the leaderboard: name, kind, unit and meaning, in order.

Every numeric column's name carries its unit (``latency_ms_median``, ``energy_j_per_image``,
``co2_g_train``); accuracy columns are fractions in [0, 1]; ``_pct`` columns are percent. A
``bool`` column is True or False on every row (never empty), so ``pandas.read_csv`` reads it as
``bool``; what False means when there is nothing to flag is in its meaning.
"""

from __future__ import annotations

from greenbench.metrics import METRICS

#: the accuracy metrics of the installed tasks, each a column
ACCURACY = [m.name for m in METRICS.values() if m.kind == "accuracy"]

# name, kind (text | float | int | bool), unit and meaning
_SPEC: list[tuple[str, str, str]] = [
    ("suite", "text", "suite name"),
    (
        "suite_config",
        "text",
        "key (16 hex digits) of what makes rows compare: task, baseline, data fingerprint and split, "
        "measure settings; other data or settings: other rows, never merged",
    ),
    ("variant", "text", "variant name"),
    ("runtime", "text", "runtime that ran the measured model: torch, onnxruntime, openvino, …"),
    (
        "runtime_options",
        "text",
        "the runtime's options as the suite set them (key=value, …; empty: defaults); openvino's "
        "precision is a hint for float layers, model_precision is what ran",
    ),
    ("model_precision", "text", "numeric precision the runtime ran the model in (fp32, fp16, int8, …)"),
    ("device_id", "text", "hardware id: hash of CPU model, cores, RAM, arch and GPUs (greenbench env)"),
    ("device", "text", "short description of the device: measured device, CPU model, cores, RAM, GPUs"),
    (
        "rank_group",
        "text",
        "the rows ranked together: suite/suite_config/device_id/energy_method (none: no energy "
        "figure); a measured row is never ranked against an estimated one",
    ),
    ("rank", "int", "rank within rank_group under the rank rule (the .meta.json file), 1 = best"),
    (
        "pareto_rank",
        "int",
        "non-dominated layer of accuracy vs energy_j_per_image within rank_group, 1 = front",
    ),
    ("pareto_optimal", "bool", "on the Pareto front of accuracy vs energy_j_per_image within rank_group"),
    ("task", "text", "the record's task (detect, or an installed task)"),
    ("baseline", "text", "the suite's baseline variant"),
    ("is_baseline", "bool", "this row is the baseline variant"),
    ("parent", "text", "the variant this one is derived from"),
    ("accuracy_metric", "text", "which accuracy column the rank uses: the task's headline metric"),
    ("accuracy", "float", "fraction in [0, 1]: the value of accuracy_metric"),
    *[(n, "float", f"fraction in [0, 1]: {METRICS[n].description}") for n in ACCURACY],
    (
        "latency_ms_median",
        "float",
        "ms per call of `batch` images: geometric mean over rounds of round medians",
    ),
    (
        "latency_ms_ci_low",
        "float",
        "ms: 95 % CI low (t-interval over processes: one median per round, log scale)",
    ),
    ("latency_ms_ci_high", "float", "ms: 95 % CI high"),
    (
        "latency_noisy",
        "bool",
        "latency flagged noisy (IQR over median too wide; rounds disagree: old records); False "
        "without a latency figure",
    ),
    (
        "latency_total_ms_median",
        "float",
        "ms per image end to end (read, decode, preprocess, model, postprocess; "
        "latency.scope both): as latency_ms_median; empty at scope model or total",
    ),
    ("latency_total_ms_ci_low", "float", "ms: 95 % CI low"),
    ("latency_total_ms_ci_high", "float", "ms: 95 % CI high"),
    ("latency_delta_pct", "float", "% vs the baseline's latency (paired: time-adjacent blocks)"),
    ("latency_delta_pct_ci_low", "float", "%: 95 % CI low of the paired Δ (empty when unpaired)"),
    ("latency_delta_pct_ci_high", "float", "%: 95 % CI high of the paired Δ"),
    (
        "latency_delta_significant",
        "bool",
        "the paired Δ's CI excludes 0; False without a paired Δ and CI",
    ),
    (
        "energy_j_per_image",
        "float",
        "J per image of inference, gross: geometric mean over rounds of round medians",
    ),
    ("energy_j_per_image_ci_low", "float", "J: 95 % CI low"),
    ("energy_j_per_image_ci_high", "float", "J: 95 % CI high"),
    ("energy_net_j_per_image", "float", "J per image of inference, net of the idle power"),
    ("energy_net_j_per_image_ci_low", "float", "J: 95 % CI low"),
    ("energy_net_j_per_image_ci_high", "float", "J: 95 % CI high"),
    (
        "energy_noisy",
        "bool",
        "energy per image flagged noisy or rounds disagree; False without an energy figure",
    ),
    ("energy_method", "text", "measured (hardware counters) or estimated (modelled from CPU time)"),
    ("energy_source", "text", "meter(s) behind energy_j_per_image (rapl, nvml, estimate, …)"),
    ("energy_delta_pct", "float", "% vs the baseline's energy per image (empty across methods/sources)"),
    ("energy_delta_pct_ci_low", "float", "%: 95 % CI low of the paired Δ"),
    ("energy_delta_pct_ci_high", "float", "%: 95 % CI high of the paired Δ"),
    (
        "energy_delta_significant",
        "bool",
        "the paired Δ's CI excludes 0; False without a paired Δ and CI",
    ),
    (
        "latency_delta_paired",
        "bool",
        "latency Δ paired in time with the baseline's blocks; False: from two values, or no Δ",
    ),
    (
        "energy_delta_paired",
        "bool",
        "energy Δ paired in time with the baseline's blocks; False: from two values, or no Δ",
    ),
    (
        "paired",
        "bool",
        "the row has a Δ and every Δ of it is from blocks interleaved with the baseline's in the "
        "same processes; False: a Δ from two values measured apart (no CI), or no Δ",
    ),
    ("noisy", "bool", "latency_noisy or energy_noisy"),
    ("co2_g_per_1k_images", "float", "g CO2 of 1000 images' inference: gross J × grid intensity × PUE"),
    ("train_energy_j", "float", "J of this variant's own training stages, gross"),
    ("train_energy_net_j", "float", "J of this variant's own training stages, net of idle"),
    ("train_energy_lineage_j", "float", "J of every stage from the root model on, gross"),
    ("train_energy_method", "text", "measured or estimated"),
    ("co2_g_train", "float", "g CO2 of this variant's own stages: gross J × grid intensity × PUE"),
    ("grid_g_per_kwh", "float", "g CO2 per kWh used for the CO2 columns"),
    ("pue", "float", "power usage effectiveness applied to the CO2 columns"),
    ("gflops", "float", "GFLOP per forward pass of one image at imgsz_px; GFLOPs = 2 × GMACs"),
    ("gmacs", "float", "GMAC (10^9 multiply-accumulates) per forward pass of one image"),
    ("params_m", "float", "parameters, millions"),
    ("size_mb", "float", "model file size, MB (10^6 bytes)"),
    ("peak_rss_mb", "float", "MB: peak RSS of the process that evaluated the model"),
    ("batch", "int", "images per timed call"),
    ("imgsz_px", "int", "px: side of the square input of latency, energy and GFLOPs"),
    ("threads", "int", "intra-op threads of the timed calls"),
    ("achieved_gflops_per_s", "float", "GFLOP/s achieved: gflops × batch ÷ (latency_ms_median / 1000)"),
    ("peak_gflops_per_s", "float", "GFLOP/s (int8: GOP/s): this device's peak from 'greenbench env --peak'"),
    ("peak_kind", "text", "which peak: fp32 matmul, or int8 for quantized variants (when measured)"),
    ("peak_threads", "int", "threads the peak was measured with"),
    ("pct_of_peak", "float", "%: achieved_gflops_per_s ÷ peak_gflops_per_s × 100 (roofline)"),
    ("smoke", "bool", "a record of 'greenbench run --smoke' (only with include_smoke)"),
    ("run_id", "text", "the run that produced the record"),
    ("recorded_at", "text", "when the record was finished (UTC, ISO 8601)"),
    ("suite_hash", "text", "sha256 of the suite file the record was run from"),
    (
        "variant_hash",
        "text",
        "the variant's resume key: its config, the data, the baseline's config (what resume looks up)",
    ),
    ("dataset_fingerprint", "text", "the task's content fingerprint of the evaluated data"),
    ("torch_version", "text", "torch version where it was measured"),
    ("runtime_version", "text", "version of the runtime's library (torch, onnxruntime, openvino)"),
    ("greenbench_version", "text", "greenbench version that measured it"),
    ("git_commit", "text", "git commit of the suite's folder at run time ('+dirty' if modified)"),
    ("schema_version", "int", "record schema version"),
]

#: every column of ``load_results`` and the leaderboard CSV, in order: (name, unit and meaning)
COLUMNS: list[tuple[str, str]] = [(name, what) for name, _, what in _SPEC]
#: column name -> text | float | int | bool
KINDS: dict[str, str] = {name: kind for name, kind, _ in _SPEC}
#: the pandas dtype of each kind (an int column may be empty: nullable Int64)
DTYPES = {"text": "object", "float": "float64", "int": "Int64", "bool": "bool"}
