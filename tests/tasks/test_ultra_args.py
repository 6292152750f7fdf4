"""Training arguments checked against ultralytics' own default.yaml, without importing it."""

from __future__ import annotations

import pytest

from greenbench.tasks.detect.ultra_args import check_train_value, train_arg_types


def test_types_come_from_the_default_yaml_comments() -> None:
    types = train_arg_types()
    assert types["epochs"][0] == (int,) and types["val"][0] == (bool,)
    assert float in types["lr0"][0] and len(types) > 80


@pytest.mark.parametrize(
    ("key", "value"),
    [("imgsz", 64), ("imgsz", 640), ("epochs", 1), ("batch", -1), ("batch", 0.5), ("batch", 8), ("lr0", 1),
     ("amp", False), ("amp", "bf16"), ("optimizer", "sgd"), ("val", True), ("mosaic", 0)],
)  # fmt: skip
def test_accepted(key: str, value: object) -> None:
    assert check_train_value(key, value) is None


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [("imgsz", 80, "multiple of 32"), ("imgsz", "abc", "got str"), ("epochs", 0, "≥ 1"),
     ("epochs", True, "got bool"), ("batch", 0, "AutoBatch"), ("lr0", "fast", "got str"),
     ("lr0", 0, "> 0"), ("workers", -1, "≥ 0"), ("optimizer", "Foo", "expected one of"),
     ("val", "yes", "bool")],
)  # fmt: skip
def test_refused_with_the_reason(key: str, value: object, why: str) -> None:
    message = check_train_value(key, value)
    assert message is not None and why in message
