"""The public names: what `import archbench` offers, what a type checker sees, and what the docs say."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import archbench

ROOT = Path(__file__).resolve().parents[1]


def test_every_lazy_name_is_also_imported_for_type_checkers_from_the_same_module():
    tree = ast.parse((ROOT / "archbench" / "__init__.py").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                typed.update({alias.name: imp.module for alias in imp.names})
    assert typed == archbench._LAZY


def test_the_run_outcome_and_interrupted_are_exported_and_the_package_is_typed():
    from archbench.execute.session import Interrupted, RunOutcome

    assert archbench.RunOutcome is RunOutcome and archbench.Interrupted is Interrupted
    assert (ROOT / "archbench" / "py.typed").is_file()
    assert "py.typed" in (ROOT / "pyproject.toml").read_text()


def test_the_documented_run_signature_is_the_real_one():
    doc = (ROOT / "docs" / "python-api.md").read_text()
    block = re.search(r"```python\narchbench\.run\((.*?)\)\n```", doc, re.S)
    assert block, "docs/python-api.md lost its archbench.run signature block"
    documented = [p.split("=")[0].strip() for p in block.group(1).replace("\n", " ").split(",")]
    documented = [p for p in documented if p and p != "*"]
    real = [p for p in inspect.signature(archbench.run).parameters]
    assert documented == real


def test_all_lists_the_lazy_names():
    assert sorted(archbench.__all__) == sorted(archbench._LAZY)


@pytest.mark.parametrize("field, value", [("min_samples", -1), ("min_samples", 2.5), ("max_time", float("inf")),
                                          ("target", 0.0), ("target", float("inf")), ("min_time", -1.0),
                                          ("confidence", 1.0)])
def test_a_bad_stop_rule_is_bad_input_naming_the_field(field, value):
    with pytest.raises(archbench.BadInput, match=rf"^StopRule: {field}={value!r}; allowed: "):
        archbench.StopRule(**{field: value})
