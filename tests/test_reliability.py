"""Bad input, refused at the door: every malformed suite in tests/bad_suites/ through the CLI, random
documents through the loader, the point limit, the results root, and the hooks that let a
registered class refuse what it cannot take (check_shape, a metric's tasks). Nothing here runs a model.

Each file in tests/bad_suites/ says what its one-line error must contain (``# expect: ...``) and,
where it needs one, what it requires (``# requires: ...``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import Field
from torch import nn

import archbench
from archbench import registry
from archbench.cli import cli
from archbench.errors import BadInput
from archbench.metrics.base import Metric
from archbench.results.store import ResultStore
from archbench.suite import MAX_POINTS
from archbench.suite.load import parse_suite
from archbench.suite.plan import count_points, expand
from archbench.suite.schema import Suite
from archbench.tasks.base import Task

CORPUS_DIR = Path(__file__).parent / "bad_suites"
CORPUS = sorted(CORPUS_DIR.glob("*.yaml"))
# Files that cannot carry their expectations in a comment: the empty one, the one that is not UTF-8.
EXPECT = {
    "empty.yaml": ["the suite is empty; it needs at least 'name' and 'experiments'"],
    "not-utf8.yaml": ["not UTF-8 text (byte", "a suite is a YAML text file"],
}


SMALL = "name: t\nexperiments:\n  - {name: e, architectures: lstm, metrics: flops, sweep: {seq_len: %s, batch: %s}}\n"


def sweep_of(n_lengths: int, n_batches: int) -> str:
    """A valid suite of n_lengths x n_batches points."""
    return SMALL % (list(range(1, n_lengths + 1)), list(range(1, n_batches + 1)))


# ----------------------------------------------------------------------- test-only registrations


class LearnedTable(archbench.Architecture):
    """A learned table of ``max_len`` positions: it refuses a longer sequence when the suite loads."""

    def __init__(self, vocab_size: int, causal: bool = True, d_model: Annotated[int, Field(gt=0)] = 8,
                 max_len: Annotated[int, Field(gt=0)] = 64):
        super().__init__()
        self.vocab_size, self.causal = vocab_size, causal
        self.embed, self.pos = nn.Embedding(vocab_size, d_model), nn.Embedding(max_len, d_model)
        self.head = nn.Linear(d_model, vocab_size)

    @staticmethod
    def check_shape(params: dict[str, Any], seq_len: int) -> None:
        if seq_len > params["max_len"]:
            raise ValueError(f"the learned table has max_len {params['max_len']} rows")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x) + self.pos.weight[: x.shape[1]])


class DelayedCopy(Task):
    """Copy after ``delay`` steps: needs seq_len > delay."""

    def __init__(self, seq_len: int, vocab_size: Annotated[int, Field(ge=2)] = 8, delay: Annotated[int, Field(gt=0)] = 4):
        self.seq_len, self.vocab_size, self.delay = seq_len, vocab_size, delay

    @staticmethod
    def check_shape(params: dict[str, Any], seq_len: int) -> None:
        if seq_len <= params["delay"]:
            raise ValueError(f"no room to copy after a delay of {params['delay']}")


class CopyAccuracy(Metric):
    name, unit, higher_is_better = "test_accuracy", "fraction", True
    tasks = ("test_copy",)  # applies to this task alone


@pytest.fixture
def test_registrations():
    added = [(registry.architectures, "test_learned", LearnedTable), (registry.tasks, "test_copy", DelayedCopy),
             (registry.metrics, "test_accuracy", CopyAccuracy)]
    for reg, name, obj in added:
        reg.add(name, obj)
    try:
        yield
    finally:
        for reg, name, _ in added:
            reg.remove(name)


# -------------------------------------------------------------------- the corpus, through the CLI


def header(path: Path) -> tuple[list[str], list[str]]:
    """(expected parts of the message, requirements) from the file's leading comments."""
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    expect = [line.removeprefix("# expect: ") for line in lines if line.startswith("# expect: ")]
    requires = [line.removeprefix("# requires: ") for line in lines if line.startswith("# requires: ")]
    return expect + EXPECT.get(path.name, []), requires


def test_the_corpus_is_large_and_every_file_says_what_it_expects():
    assert len(CORPUS) >= 30
    for path in CORPUS:
        assert header(path)[0], f"{path.name} names no expected message"


REQUIREMENTS = {
    "no-cuda": (lambda: not torch.cuda.is_available(), "checks the refusal of cuda on a CPU-only machine"),
    "test-registrations": (lambda: True, ""),
}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_malformed_suite_exits_2_with_one_line_naming_the_value_and_writes_nothing(path, tmp_path, test_registrations):
    expect, requires = header(path)
    for need in requires:
        met, why = REQUIREMENTS[need]
        if not met():
            pytest.skip(why)
    out = tmp_path / "results"
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and len(line) < 600, line
    for part in expect:
        assert part in line, f"{part!r} not in {line!r}"
    assert not out.exists()


@pytest.mark.parametrize("verb", ["run", "plan"])
def test_missing_suite_and_a_folder_for_a_suite(verb, tmp_path):
    for path, part in [(tmp_path / "nope.yaml", "does not exist"), (tmp_path, "is not a file")]:
        result = CliRunner().invoke(cli, [verb, str(path)])
        assert result.exit_code == 2 and part in result.stderr
        assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_out_that_is_a_file_is_one_line_and_nothing_is_written(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(sweep_of(1, 1))
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["run", str(suite), "--out", str(blocker), "--no-progress"])
    assert result.exit_code == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "cannot create the results folder" in line and str(blocker) in line
    assert blocker.read_text() == ""


# --------------------------------------------------------------------------------- point limit

def test_limit_counts_before_expanding():
    assert count_points(parse_suite(sweep_of(100, 100))) == MAX_POINTS  # at the limit: allowed
    with pytest.raises(BadInput, match=r"expands to 10,100 points, more than the limit of 10,000; pass --yes"):
        parse_suite(sweep_of(101, 100))
    assert len(expand(parse_suite(sweep_of(101, 100), max_points=None))) == 10_100
    with pytest.raises(BadInput, match="expands to 7 points, more than the limit of 6"):
        parse_suite(sweep_of(7, 1), max_points=6)


def test_count_points_is_the_number_of_points():
    text = yaml.safe_dump({"name": "t", "seeds": [0, 1], "experiments": [
        {"name": "a", "architectures": ["lstm", {"kind": "tcn", "levels": [1, 2], "dilation_base": [1, 2]}],
         "task": {"kind": "uniform", "vocab_size": [4, 8]}, "metrics": "flops", "passes": ["forward", "backward"],
         "causal": [True, False], "sweep": {"seq_len": [8, 16, 32], "batch": [1, 2], "d_model": [8, 16]}},
        {"name": "b", "architectures": "transformer", "seeds": [3], "metrics": "flops", "sweep": {"seq_len": 8}},
    ]})
    suite = parse_suite(text)
    assert count_points(suite) == len(expand(suite)) == 3 * 2 * 2 * 2 * 2 * 2 * 2 * (1 + 4) + 1


def test_run_and_plan_refuse_too_many_points_without_yes_and_go_ahead_with_it(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text(sweep_of(101, 100))
    for args in (["run", str(path), "--out", str(tmp_path / "o")], ["plan", str(path)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2 and "10,100 points" in result.stderr and "--yes" in result.stderr
    assert not (tmp_path / "o").exists()

    plan = CliRunner().invoke(cli, ["plan", str(path), "--yes"])
    assert plan.exit_code == 0 and plan.stdout.splitlines()[-1].startswith("10100 points")

    import archbench.execute.session
    from archbench.execute.schedule import Summary

    seen = []

    def run_points(points, *args, **kwargs):  # count them, run none
        seen.append(len(points))
        return Summary()

    monkeypatch.setattr(archbench.execute.session, "run_points", run_points)
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "o"), "--yes", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert seen == [10_100] and "10100 points on" in result.stderr


# ---------------------------------------------------------------------------- the results root


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../x", "/tmp/x", "a\\b", "a\0b"])
def test_results_store_refuses_a_name_that_is_not_one_folder(name, tmp_path):
    with pytest.raises(BadInput, match="not a plain folder name"):
        ResultStore.create(tmp_path / "root", name)
    assert not (tmp_path / "root").exists()


def test_results_store_refuses_a_folder_that_resolves_outside_the_root(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "quick")
    with pytest.raises(BadInput, match="resolves outside the results root"):
        ResultStore.create(root, "quick")
    assert list(elsewhere.iterdir()) == []


def test_results_store_makes_a_new_folder_each_time_under_the_root(tmp_path):
    a, b = ResultStore.create(tmp_path, "s"), ResultStore.create(tmp_path, "s")
    assert a.folder != b.folder and a.folder.parent == b.folder.parent == tmp_path / "s"


# ------------------------------------------------------------- hooks of the registered classes


def test_check_shape_lets_an_architecture_refuse_a_length_it_cannot_hold(test_registrations):
    ok = "name: t\nexperiments:\n  - {name: e, architectures: [{kind: test_learned, max_len: 16}], metrics: latency, sweep: {seq_len: [8, 16]}}\n"
    assert len(expand(parse_suite(ok))) == 2
    with pytest.raises(BadInput) as info:
        parse_suite(ok.replace("[8, 16]", "[8, 16, 17]"), source="s.yaml")
    assert str(info.value) == (
        "s.yaml: experiments[0].sweep.seq_len: 17 does not fit experiments[0].architectures[0] (test_learned): "
        "the learned table has max_len 16 rows"
    )


def test_check_shape_lets_a_task_refuse_a_length(test_registrations):
    text = "name: t\nexperiments:\n  - {name: e, architectures: lstm, task: {kind: test_copy, delay: 8}, metrics: test_accuracy, sweep: {seq_len: [16, 8]}}\n"
    with pytest.raises(BadInput, match=r"experiments\[0\].sweep.seq_len: 8 does not fit experiments\[0\].task \(test_copy\): no room to copy after a delay of 8"):
        parse_suite(text)


def test_a_metric_applies_to_the_tasks_it_names(test_registrations):
    text = "name: t\nexperiments:\n  - {name: e, architectures: lstm, task: test_copy, metrics: [latency, test_accuracy], sweep: {seq_len: 16}}\n"
    [point] = expand(parse_suite(text))
    assert point.metrics == ("latency", "test_accuracy") and point.task == "test_copy"
    with pytest.raises(BadInput, match=r"metric 'test_accuracy' does not apply to task 'uniform'; it applies to: test_copy"):
        parse_suite(text.replace("task: test_copy, ", ""))
    assert "(tasks: test_copy)" in CliRunner().invoke(cli, ["ls"]).stdout


def test_test_registrations_are_removed_afterwards():
    assert "test_learned" not in registry.architectures and "test_accuracy" not in registry.metrics
    with pytest.raises(BadInput, match="unknown architecture 'test_learned'"):
        registry.architectures.remove("test_learned")


# ----------------------------------------------------------------------------- random documents

KEYS = [
    "name", "description", "device", "dtype", "threads", "tf32", "seeds", "timing", "timeout", "experiments",
    "architectures", "task", "metrics", "passes", "causal", "sweep", "seq_len", "batch", "d_model", "kind", "label",
    "heads", "layers", "levels", "kernel_size", "dilation_base", "dropout", "positional", "max_len", "vocab_size",
    "min_samples", "max_time", "target", "warmup", "interleave",
]
WORDS = ["lstm", "tcn", "transformer", "uniform", "latency", "flops", "peak_memory", "forward", "train_step",
         "auto", "cpu", "cuda", "float32", "learned", "none", "e", "..", "/tmp/x", "yes"]
keys = st.sampled_from(KEYS) | st.text(max_size=6)
scalars = (st.none() | st.booleans() | st.integers(-2, 70) | st.integers() | st.floats() | st.text(max_size=8)
           | st.sampled_from(WORDS))
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                        max_leaves=10)


def mostly(valid: st.SearchStrategy, odds: int = 10) -> st.SearchStrategy:
    """A valid value, but one time in ``odds`` anything at all (one_of would make it one in two)."""
    return st.sampled_from([True] * (odds - 1) + [False]).flatmap(lambda ok: valid if ok else anything)


def some(values: st.SearchStrategy, size: int = 3) -> st.SearchStrategy:
    return values | st.lists(values, min_size=1, max_size=size)


small = st.integers(1, 64)
architecture = st.sampled_from(["lstm", "tcn", "transformer"]) | st.fixed_dictionaries(
    {"kind": mostly(st.sampled_from(["lstm", "tcn", "transformer"]))},
    optional={
        "label": mostly(st.sampled_from(["a", "b", "x.y"])), "layers": mostly(some(st.integers(1, 3))),
        "heads": mostly(some(st.sampled_from([1, 2, 3, 4]))), "levels": mostly(some(st.integers(1, 3))),
        "kernel_size": mostly(some(st.integers(1, 4))), "dilation_base": mostly(some(st.integers(1, 3))),
        "dropout": mostly(st.floats(-0.5, 1.5)), "positional": mostly(st.sampled_from(["sinusoidal", "learned", "none"])),
        "max_len": mostly(small),
    },
)
experiment = st.fixed_dictionaries(
    {
        "name": mostly(st.sampled_from(["e", "f", "g"])),
        "architectures": mostly(some(architecture)),
        "metrics": mostly(some(st.sampled_from(["latency", "flops", "peak_memory"]), 2)),
        "sweep": mostly(st.fixed_dictionaries(
            {"seq_len": mostly(some(small))},
            optional={"batch": mostly(some(st.integers(1, 4))), "d_model": mostly(some(st.sampled_from([4, 8, 12, 16]))),
                      "heads": mostly(st.sampled_from([1, 2]))},
        )),
    },
    optional={
        "task": mostly(st.sampled_from(["uniform"]) | st.fixed_dictionaries({"kind": st.just("uniform")},
                                                                           optional={"vocab_size": mostly(small)})),
        "passes": mostly(some(st.sampled_from(["forward", "backward", "train_step"]))),
        "causal": mostly(some(st.booleans())), "seeds": mostly(some(st.integers(0, 3))),
    },
)
document = st.fixed_dictionaries(
    {"name": mostly(st.sampled_from(["t", "quick", "a.b-c"])), "experiments": mostly(st.lists(experiment, min_size=1, max_size=2))},
    optional={
        "device": mostly(st.sampled_from(["auto", "cpu", "cuda"])), "dtype": mostly(st.sampled_from(["float32", "bfloat16"])),
        "threads": mostly(st.integers(1, 4)), "seeds": mostly(some(st.integers(0, 3))), "timeout": mostly(st.floats(0.1, 60)),
        "timing": mostly(st.fixed_dictionaries({}, optional={"min_samples": mostly(small), "max_time": mostly(st.floats(0.01, 1)),
                                                           "target": mostly(st.floats(0.001, 0.5))})),
        "description": mostly(st.text(max_size=20)),
    },
)
documents = mostly(document, odds=4)


def loads_or_refuses(text: str) -> None:
    try:
        suite = parse_suite(text, source="h.yaml")
    except BadInput as exc:
        message = str(exc)
        assert message.startswith("h.yaml: ") and "\n" not in message and len(message) < 2000, message
        event("refused: " + message.removeprefix("h.yaml: ").split(":")[0].split(" at line")[0])
        return
    assert isinstance(suite, Suite)
    assert count_points(suite) == len(expand(suite))
    event("valid suite")


# No deadline: a busy 2-core runner can take 2 s over one document; pytest-timeout (.ci/run) ends a hang.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_load_or_raise_bad_input(doc):
    """Whatever the document, the loader returns a Suite or raises BadInput: never anything else."""
    loads_or_refuses(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200) | st.from_regex(r"\A(name: [a-z.]{0,3}\n)?(experiments:\s*[-\[{&*!|>:? a-z0-9,\]}\n]{0,60})?\Z"))
def test_random_text_loads_or_raises_bad_input(text):
    loads_or_refuses(text)


def test_nan_and_infinity_are_not_lengths():
    for value in (".nan", ".inf", "-.inf", "1.0e+400"):
        with pytest.raises(BadInput, match="seq_len"):
            parse_suite(SMALL % (value, 1))
