"""Suite validation of ``runtime:``, of what each stage reads (export, quantize) and of fixed-shape
exports; the runtime spec in the variant's identity."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from greenbench.errors import SuiteError
from greenbench.suite import Suite, load_suite

HEAD = """\
name: rt
task: detect
dataset: {synthetic: {classes: 2, images: 20, imgsz: 64}}
defaults: {epochs: 1, imgsz: 64}
baseline: base
variants:
  base: {model: yolov5n.yaml, stages: [train]}
  onnx: {from: base, stages: [export]}
"""


def load(tmp_path: Path, variants: str, head: str = HEAD) -> Suite:
    path = tmp_path / "rt.yaml"
    path.write_text(head + textwrap.indent(textwrap.dedent(variants), "  "))
    return load_suite(path)


def problems(tmp_path: Path, variants: str, head: str = HEAD) -> str:
    with pytest.raises(SuiteError) as e:
        load(tmp_path, variants, head)
    return str(e.value)


def test_runtime_forms_are_normalised_and_options_filled_in(tmp_path: Path) -> None:
    suite = load(
        tmp_path,
        """
        int8: {from: onnx, stages: [{quantize: {calibration_images: 8}}]}
        int8_ov: {from: onnx, stages: [{quantize: {calibration_images: 8}}], runtime: openvino}
        bf16: {from: onnx, runtime: {name: openvino, precision: bf16}}
        ort: {from: onnx, runtime: onnxruntime}
        eager: {from: base, runtime: torch}
        """,
    )
    v = suite.variants
    assert v["int8"].runtime is None
    assert v["int8_ov"].runtime is not None and v["int8_ov"].runtime.name == "openvino"
    assert v["int8_ov"].runtime.options == {"precision": "f32", "streams": 1}
    assert v["bf16"].runtime is not None and v["bf16"].runtime.options == {"precision": "bf16", "streams": 1}
    assert v["ort"].runtime is not None and v["ort"].runtime.options == {}
    assert v["int8"].stages[0].params == {
        "mode": "int8_static", "calibration_images": 8, "ops": ["Conv", "Gemm", "MatMul"], "seed": 0,
    }  # fmt: skip
    assert v["onnx"].stages[0].params["dynamic"] is False


def test_the_runtime_spec_is_part_of_the_identity_and_not_inherited(tmp_path: Path) -> None:
    def hashes(precision: str) -> dict[str, str]:
        suite = load(
            tmp_path,
            f"""
            ov: {{from: onnx, runtime: {{name: openvino, precision: {precision}}}}}
            child: {{from: ov, stages: [quantize]}}
            """,
        )
        assert "runtime" in suite.variant_config("ov") and "runtime" not in suite.variant_config("child")
        return {name: suite.variant_hash(name) for name in suite.variants}

    f32, bf16 = hashes("f32"), hashes("bf16")
    assert f32["ov"] != bf16["ov"]  # changing the precision re-measures
    assert f32["child"] == bf16["child"] and f32["onnx"] == bf16["onnx"]


def test_an_unknown_option_is_an_error_naming_the_key(tmp_path: Path) -> None:
    text = problems(tmp_path, "ov: {from: onnx, runtime: {name: openvino, bogus: 1}}\n")
    assert "rt.yaml:9: variants.ov.runtime.bogus: unknown option 'bogus' for runtime 'openvino'" in text
    assert "precision, streams" in text


@pytest.mark.parametrize(
    ("variant", "needles"),
    [
        ("x: {from: onnx, runtime: openvin}", ["unknown runtime 'openvin'", "Did you mean 'openvino'?"]),
        ("x: {from: onnx, runtime: {name: openvino, precision: fp8}}", ["variants.x.runtime.precision"]),
        ("x: {from: onnx, runtime: [openvino]}", ["variants.x.runtime", "expected a runtime name"]),
        ("x: {from: base, runtime: openvino}", ["runtime 'openvino' reads onnx files", "add '- export'"]),
        ("x: {from: onnx, runtime: torch}", ["runtime 'torch' reads torch files", "ends with an ONNX model"]),
        ("x: {from: onnx, runtime: {name: torch, threads: 2}}", ["variants.x.runtime.threads"]),
        ("x: {from: base, stages: [quantize]}",
         ["variants.x.stages[0]: stage 'quantize' needs an ONNX model", "'stages: [export, quantize]'"]),
        ("x: {model: yolov5n.yaml, stages: [quantize]}", ["stage 'quantize' needs an ONNX model"]),
        ("x: {from: onnx, stages: [train]}", ["stage 'train' takes a torch checkpoint", "before 'export'"]),
        ("x: {from: onnx, stages: [export]}", ["stage 'export' takes a torch checkpoint"]),
        ("x: {from: base, stages: [{export: {format: tflite}}]}", ["variants.x.stages[0].export.format"]),
    ],
)  # fmt: skip
def test_wrong_runtimes_and_stage_inputs_are_suite_errors(
    tmp_path: Path, variant: str, needles: list[str]
) -> None:
    text = problems(tmp_path, variant + "\n")
    for needle in needles:
        assert needle in text, (needle, text)


def test_a_fixed_shape_export_must_match_the_latency_size_and_batch(tmp_path: Path) -> None:
    head = HEAD.replace("baseline:", "measure: {latency: {imgsz: 128, batch: 2}}\nbaseline:")
    text = problems(tmp_path, "", head)
    assert "variants.onnx.stages[0].export: exports a fixed 1x3x64x64 input" in text
    assert "measure.latency.imgsz is 128" in text and "measure.latency.batch is 2" in text
    dynamic = head.replace("stages: [export]", "stages: [{export: {dynamic: true}}]")
    assert load(tmp_path, "", dynamic).variants["onnx"].stages[0].params["dynamic"] is True
