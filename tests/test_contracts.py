"""The contracts are declared: what the harness reads of a metric is a class attribute of Metric with a
default, read plainly (no getattr with a fallback), and the registry takes only what declares it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from archbench import registry
from archbench.errors import BadInput
from archbench.execute.executors.base import is_timing
from archbench.metrics.base import Metric
from archbench.suite.point import Point

PACKAGE = Path(__file__).resolve().parents[1] / "archbench"
METRIC_FLAGS = {"trains", "generates", "implemented", "exclusive", "tasks"}


def test_a_metric_that_declares_nothing_gets_the_defaults():
    class Plain(Metric):
        name, unit, higher_is_better = "plain", "s", False

    assert (Plain.trains, Plain.generates, Plain.implemented, Plain.exclusive, Plain.tasks) == \
        (False, False, False, False, None)
    assert Plain.applies_to("mqar")


def test_the_metric_registry_takes_only_metric_subclasses():
    class NotAMetric:
        name, unit, higher_is_better = "x", "s", False

    with pytest.raises(BadInput, match="not a subclass of Metric"):
        registry.metrics.add("test_not_a_metric", NotAMetric)
    assert "test_not_a_metric" not in registry.metrics


@pytest.mark.parametrize("metric, alone", [("latency", True), ("peak_memory", True), ("instructions", True),
                                           ("flops", False), ("accuracy", False), ("receptive_field", False)])
def test_measured_alone_is_one_declared_flag(metric, alone):
    point = Point("e", "lstm", "lstm", (), "uniform", (), (metric,), 8, 1, "forward", 0, True, "cpu", "float32", 1)
    assert registry.metrics.get(metric).exclusive is alone
    assert is_timing(point) is alone


def test_no_getattr_reads_a_metric_flag_outside_the_base_class():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in METRIC_FLAGS):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} getattr(..., {node.args[1].value!r})")
    assert found == []


ARCHITECTURE_DECLARED = {"framing", "causal_tolerance", "uncounted_flops", "decode_tolerance", "layer_hook", "fine_width"}


def test_no_getattr_reads_an_architecture_declaration_outside_the_base_module():
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "architectures" / "base.py":
            continue  # declared(): the one reader with a fallback
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr" and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in ARCHITECTURE_DECLARED):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} getattr(..., {node.args[1].value!r})")
    assert found == []


def test_declared_gives_the_contract_default_to_a_plain_module_and_a_factory():
    from torch import nn

    from archbench.architectures.base import Architecture, declared

    def factory(vocab_size: int, causal: bool = True) -> nn.Module:
        return nn.Identity()

    for obj in (nn.Linear(2, 2), factory):
        assert declared(obj, "framing") is None and declared(obj, "causal_tolerance") == 0.0
        assert declared(obj, "uncounted_flops")(4, 16) == 0
    assert declared(registry.architectures.get("ssm"), "causal_tolerance") > 0
    assert declared(registry.architectures.get("transformer_seq2seq"), "framing") == "encoder_decoder"
    assert Architecture.framing is None
