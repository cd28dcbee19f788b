"""The house rules, checked on the code itself: no import cycles, dependencies that point one way,
torch-free readers, no module over 400 lines, and a front door that runs without torch.

The import graph is read from the source (every ``import`` statement, function-level and
``TYPE_CHECKING`` ones included), not from what happens to be imported at run time.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "archbench"
TORCH_FREE = ("archbench.results", "archbench.gate", "archbench.report", "archbench.suite.schema",
              "archbench.suite.yaml", "archbench.suite.messages", "archbench.suite.point",
              "archbench.errors", "archbench.registry")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The archbench modules ``name`` imports anywhere in its text; ``from pkg import sub`` counts as
    importing the submodule when ``pkg.sub`` is a module, else the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    # imports under `if TYPE_CHECKING:` never run: what a type checker sees is no arrow of the program
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def _outside(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts)) if ".".join(parts[:k]) in MODULES]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle_and_only_that():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def _closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [*GRAPH.get(m, ()), *_parents(m)]
    return seen


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith(TORCH_FREE)))
def test_readers_import_no_torch(name):
    """What reads results, judges or reports never imports torch, through any chain of imports."""
    heavy = sorted(m for m in _closure(name) if "torch" in _outside(MODULES[m]))
    assert heavy == [], f"{name} reaches torch through {heavy}"


@pytest.mark.parametrize("name", ["archbench.execute.group", "archbench.execute.executors.worker",
                                  "archbench.execute.executors.pool"])
def test_what_a_worker_runs_imports_no_pandas(name):
    """A worker process (resident, or a Ray worker's) runs points and writes no table: pandas, 0.2 s
    of CPU per fresh worker, is the run's own (results/clock.py stamps the points)."""
    heavy = sorted(m for m in _closure(name) if "pandas" in _outside(MODULES[m]))
    assert heavy == [], f"{name} reaches pandas through {heavy}"


def test_dependencies_point_one_way():
    """Downstream stages are never imported upstream: results, the gate and the report are read-side."""
    order = ["archbench.suite", "archbench.execute", "archbench.results", "archbench.gate", "archbench.report"]
    allowed = {  # stage -> the stages it may import
        "archbench.suite": set(),
        "archbench.results": set(),
        "archbench.execute": {"archbench.suite", "archbench.results"},
        "archbench.gate": {"archbench.suite", "archbench.results"},
        "archbench.report": {"archbench.suite", "archbench.results"},
    }
    bad = []
    for name, deps in GRAPH.items():
        stage = next((s for s in order if name == s or name.startswith(s + ".")), None)
        if stage is None:
            continue
        for dep in deps:
            other = next((s for s in order if dep == s or dep.startswith(s + ".")), None)
            if other not in (None, stage) and other not in allowed[stage]:
                bad.append(f"{name} -> {dep}")
    assert bad == []


# The floors of the house, lowest first: a module imports its own folder or a floor below, never one
# above nor a neighbour on its own floor. Late imports (inside functions) count, and so does a string
# naming an archbench module (what importlib.import_module or `python -m` would load).
FLOORS = [
    {"archbench.errors"},
    {"archbench", "archbench.parameters", "archbench.stop_rule", "archbench.fork_safety"},
    {"archbench.registry"},
    {"archbench.architectures", "archbench.tasks", "archbench.results"},
    {"archbench.suite"},
    {"archbench.instruments"},
    {"archbench.metrics"},
    {"archbench.execute"},
    {"archbench.gate", "archbench.report"},
    {"archbench.api", "archbench.cli", "archbench.testing"},
    {"archbench.__main__"},
]
# The registry loads the built-in packages and checks entries against their base class: it names the
# floors above it by design (the registrations are theirs), and imports them only on first use.
LOADERS = {"archbench.registry"}
# Arrows known to run up a floor, each to be removed (none may be added).
KNOWN_UP: set[str] = set()


def _room(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2])


def _floor(name: str) -> int:
    room = _room(name)
    return next(i for i, rooms in enumerate(FLOORS) if room in rooms)


def _named_modules(path: Path) -> set[str]:
    """archbench modules a string of the file names ("archbench.x.y", or "archbench.x.y:Attr")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            module = node.value.split(":")[0]
            if module in MODULES:
                names.add(module)
    return names


def test_every_room_is_on_a_floor():
    assert sorted(_room(m) for m in MODULES if not any(_room(m) in f for f in FLOORS)) == []


def test_no_arrow_runs_up_a_floor_or_across_one():
    bad = []
    for name, path in MODULES.items():
        if name == "archbench" or name in LOADERS:
            continue  # the package's lazy names are the public face of every floor
        for dep in GRAPH[name] | _named_modules(path):
            if _room(dep) != _room(name) and _floor(dep) >= _floor(name):
                bad.append(f"{name} -> {dep}")
    assert sorted(set(bad) - KNOWN_UP) == []
    assert KNOWN_UP <= set(bad), f"gone, remove from KNOWN_UP: {sorted(KNOWN_UP - set(bad))}"


def test_the_floor_check_sees_a_late_import_and_a_module_string(tmp_path):
    late = tmp_path / "late.py"
    late.write_text("def f():\n    from archbench.execute.group import run_group\n    return 'archbench.report.render'\n")
    assert "archbench.execute.group" in _imports("archbench.metrics.late", late)
    assert "archbench.report.render" in _named_modules(late)


def test_no_function_over_60_lines():
    """A function reads on one screen: over 60 lines, it is doing two things."""
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > 60:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert long == []


def test_no_module_over_400_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


# A finder that refuses torch, as a machine without it would.
_BLOCK = (
    "import sys\n"
    "class _NoTorch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'torch'\")\n"
    "sys.meta_path.insert(0, _NoTorch())\n"
    "from archbench.cli import main\n"
    "sys.argv = ['archbench', *sys.argv[1:]]\n"
    "main()\n"
)


def _without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", _BLOCK, *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_the_blocker_does_block_torch(tmp_path):
    done = _without_torch("env", cwd=tmp_path)  # `env` describes torch: it must fail here
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr


def test_help_report_compare_and_export_run_without_torch(tmp_path):
    fixture = ROOT / "tests" / "fixtures" / "results_v1"
    assert _without_torch("--help", cwd=tmp_path).returncode == 0
    report = _without_torch("report", str(fixture), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "index.html").is_file()
    cmp = _without_torch("compare", str(fixture), str(fixture), cwd=tmp_path)
    assert cmp.returncode == 0 and "PASS" in cmp.stdout, cmp.stderr
    out = tmp_path / "bench.json"
    export = _without_torch("export", str(fixture), "--format", "pytest-benchmark", "-o", str(out), cwd=tmp_path)
    assert export.returncode == 0 and out.stat().st_size > 0, export.stderr


# Dead code: a module-level function, class or constant of archbench/ that no code names (archbench/,
# tests/, benchmarks/, examples/: a name in use, an attribute, an import, a string naming it such as
# "archbench.x:Name" or an __all__ entry). Decorated ones register themselves (a registry finds them).
# Each name kept all the same is here, with why.
CODE_DIRS = ("archbench", "tests", "benchmarks", "examples")
UNUSED_ALLOWED: dict[str, str] = {}


def _defined(tree: ast.Module) -> list[tuple[str, int]]:
    """The module-level names a module defines, undecorated, with their lines; dunders left out."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.decorator_list:
            out.append((node.name, node.lineno))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [(n.id, node.lineno) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    return [(name, line) for name, line in out if not name.startswith("__")]


def _referenced(tree: ast.AST) -> set[str]:
    """Every name a file uses: loaded names, attributes, imported names, and the parts of a string that
    is a dotted name ("archbench.x.y:Attr"); a docstring's prose does not count."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.rpartition(".")[2])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isascii() \
                and node.value.replace(".", "_").replace(":", "_").isidentifier():
            names |= set(node.value.replace(":", ".").split("."))
    return names


def _unused(defining: dict[str, Path], reading: list[Path]) -> list[str]:
    used: set[str] = set()
    for path in reading:
        used |= _referenced(ast.parse(path.read_text(encoding="utf-8")))
    return sorted(f"{name}.{defined} (line {line})" for name, path in defining.items()
                  for defined, line in _defined(ast.parse(path.read_text(encoding="utf-8"))) if defined not in used)


def test_no_module_level_name_is_unused():
    found = _unused(MODULES, [p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")])
    assert [e for e in found if e.split(" ")[0] not in UNUSED_ALLOWED] == []
    gone = [n for n in UNUSED_ALLOWED if not any(e.startswith(n + " ") for e in found)]
    assert gone == [], f"used now, remove from UNUSED_ALLOWED: {gone}"


def test_the_dead_code_check_finds_an_unused_function(tmp_path):
    module = tmp_path / "mod.py"
    module.write_text('"""uses: helper"""\nLIMIT = 3\n\n\ndef helper():\n    return LIMIT\n\n\n'
                      'def forgotten():\n    return 1\n\n\n@register("x")\ndef registered():\n    return 2\n')
    caller = tmp_path / "caller.py"
    caller.write_text("from mod import helper\nprint(helper(), 'archbench.mod:nothing')\n")
    assert _unused({"mod": module}, [module, caller]) == ["mod.forgotten (line 9)"]
