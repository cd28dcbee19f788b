"""Suite validation: good suites parse; a bad one raises BadInput with one line naming the path
to the bad key, the bad value and what is allowed. Nothing here runs a model."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import archbench
from archbench.errors import BadInput
from archbench.suite.load import parse_suite

ROOT = Path(__file__).resolve().parents[1]
SRC = "s.yaml"


def text(top: dict | None = None, experiments: list | None = None, **exp) -> str:
    """A small valid suite, with top-level keys and keys of its one experiment overridden."""
    e = {"name": "e", "architectures": ["lstm", "tcn"], "metrics": ["latency"], "sweep": {"seq_len": [8, 16]}}
    e.update(exp)
    return yaml.safe_dump({"name": "t", **(top or {}), "experiments": experiments or [e]}, sort_keys=False)


def error(suite_text: str) -> str:
    with pytest.raises(BadInput) as info:
        parse_suite(suite_text, source=SRC)
    msg = str(info.value)
    assert "\n" not in msg and "\r" not in msg, msg
    return msg


# ---------------------------------------------------------------------------------------- good


def test_quick_yaml_parses():
    path = ROOT / "suites" / "quick.yaml"
    suite = archbench.load_suite(path)
    assert suite.name == "quick"
    assert suite.path == str(path)
    assert suite.text == path.read_text(encoding="utf-8")
    exp = suite.experiments[0]
    assert [e.name for e in suite.experiments] == ["latency", "receptive_field", "layers_to_cover", "graph",
                                                  "generation", "copy_memory", "positional_encoding"]
    assert [a.kind for a in exp.architectures] == ["lstm", "tcn", "transformer", "gru", "rnn", "local_attention",
                                                   "linear_attention", "ssm"]
    assert exp.architectures[2].params == {"heads": 4, "layers": 2}
    assert exp.sweep.seq_len == [64, 128, 256, 512]
    assert exp.sweep.batch == [4]
    assert exp.sweep.shared() == {"d_model": [32]}
    assert exp.passes == ["forward", "train_step"]
    assert exp.metrics == ["latency", "peak_memory"]
    assert (exp.task.kind, exp.task.params) == ("uniform", {"vocab_size": 32})
    assert suite.timing.rule().min_samples == 5
    graph = suite.experiments[3]
    assert graph.metrics == ["graph", "path_length"] and graph.sweep.seq_len == [32, 64, 128, 256, 512]


def test_minimal_suite_gets_defaults():
    suite = parse_suite(
        "name: t\nexperiments:\n  - {name: e, architectures: lstm, metrics: latency, sweep: {seq_len: 8}}\n",
        source=SRC,
    )
    assert (suite.device, suite.dtype, suite.threads, suite.seeds) == ("auto", "float32", 1, [0])
    [exp] = suite.experiments
    assert exp.passes == ["forward"] and exp.causal == [True] and exp.seeds is None
    assert exp.sweep.seq_len == [8] and exp.sweep.batch == [1] and exp.sweep.shared() == {}
    assert exp.task.kind == "uniform" and exp.task.params == {}
    assert [a.kind for a in exp.architectures] == ["lstm"] and exp.metrics == ["latency"]


def test_scalars_become_one_element_lists():
    suite = parse_suite(
        text(top={"seeds": 3}, passes="train_step", causal=False, seeds=5, sweep={"seq_len": 8, "batch": 2, "d_model": 32}),
        source=SRC,
    )
    [exp] = suite.experiments
    assert suite.seeds == [3] and exp.seeds == [5]
    assert exp.passes == ["train_step"] and exp.causal == [False]
    assert exp.sweep.seq_len == [8] and exp.sweep.batch == [2] and exp.sweep.shared() == {"d_model": [32]}


def test_component_forms():
    suite = parse_suite(
        text(architectures=["tcn", {"kind": "tcn", "label": "cnn", "dilation_base": 1}], task={"kind": "uniform"}),
        source=SRC,
    )
    plain, labelled = suite.experiments[0].architectures
    assert (plain.kind, plain.label, plain.params, plain.name) == ("tcn", None, {}, "tcn")
    assert (labelled.kind, labelled.label, labelled.params, labelled.name) == ("tcn", "cnn", {"dilation_base": 1}, "cnn")


def test_load_suite_reads_a_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(text(), encoding="utf-8")
    suite = archbench.load_suite(path)
    assert suite.path == str(path) and suite.text == text() and suite.name == "t"


# ----------------------------------------------------------------------------------------- bad

BAD = {
    # unknown keys: the message lists the allowed ones
    "unknown-top-key": (
        text(top={"colour": "red"}),
        ["s.yaml: colour: unknown key; allowed: name, description, device, dtype, threads, tf32, cudnn_benchmark, seeds, timing, timeout, experiments"],
    ),
    "a-key-with-a-newline-stays-on-one-line": (  # found by hypothesis (test_reliability)
        text(top={"timing": {"\n": None}}),
        ["s.yaml: timing['\\n']: unknown key; allowed: min_samples"],
    ),
    "thread-clock-needs-one-thread": (
        text(top={"threads": 2, "timing": {"clock": "thread_cpu"}}),
        ["s.yaml: suite: timing.clock thread_cpu counts the CPU time of one thread; it needs threads: 1, got threads: 2"],
    ),
    "unknown-clock": (
        text(top={"timing": {"clock": "cpu"}}),
        ["timing.clock: Input should be 'wall' or 'thread_cpu', got 'cpu'"],
    ),
    "unknown-timing-key": (
        text(top={"timing": {"min_sample": 3}}),
        ["timing.min_sample: unknown key; allowed: min_samples, min_time, max_time, target, warmup"],
    ),
    "unknown-experiment-key": (
        text(sweeps={"seq_len": 8}),
        ["experiments[0].sweeps: unknown key; allowed: name, architectures, task, metrics, passes, causal, seeds, training, generation, implementation, match_params, sweep"],
    ),
    # wrong types
    "threads-not-int": (text(top={"threads": "many"}), ["threads: Input should be a valid integer", "got 'many'"]),
    "seq_len-not-int": (
        text(sweep={"seq_len": [8, "abc"]}),
        ["experiments[0].sweep.seq_len[1]: Input should be a valid integer", "got 'abc'"],
    ),
    "seq_len-fraction": (text(sweep={"seq_len": [8.5]}), ["experiments[0].sweep.seq_len[0]:", "valid integer", "8.5"]),
    "seq_len-nested-list": (text(sweep={"seq_len": [[8, 16]]}), ["experiments[0].sweep.seq_len[0]:", "valid integer", "[8, 16]"]),
    "experiments-not-list": (
        "name: t\nexperiments: {name: e}\n",
        ["experiments: Input should be a valid list, got {'name': 'e'}"],
    ),
    "kind-not-str": (text(architectures=[{"kind": 3}]), ["experiments[0].architectures[0].kind: Input should be a valid string, got 3"]),
    "architecture-not-str-or-map": (text(architectures=[3]), ["experiments[0].architectures[0]:", "got 3"]),
    "causal-not-bool": (text(causal="maybe"), ["experiments[0].causal[0]: Input should be a valid boolean", "'maybe'"]),
    "arch-param-not-int": (
        text(architectures=[{"kind": "lstm", "layers": "two"}]),
        ["experiments[0].architectures[0].layers: Input should be a valid integer", "got 'two'"],
    ),
    "shared-param-fraction": (
        text(sweep={"seq_len": 8, "d_model": 63.5}),
        ["experiments[0].sweep.d_model:", "valid integer", "63.5"],
    ),
    # non-positive and empty sweeps
    "seq_len-zero": (text(sweep={"seq_len": [8, 0]}), ["experiments[0].sweep.seq_len[1]: Input should be greater than 0, got 0"]),
    "batch-negative": (
        text(sweep={"seq_len": 8, "batch": -2}),
        ["experiments[0].sweep.batch[0]: Input should be greater than 0, got -2"],
    ),
    "seq_len-empty": (text(sweep={"seq_len": []}), ["experiments[0].sweep.seq_len:", "at least 1 item", "got []"]),
    "seq_len-missing": (text(sweep={"batch": 8}), ["experiments[0].sweep.seq_len: required key is missing"]),
    "shared-param-empty": (text(sweep={"seq_len": 8, "d_model": []}), ["experiments[0].sweep:", "d_model is empty"]),
    "name-missing": ("experiments: []\n", ["s.yaml: name: required key is missing"]),
    "architectures-empty": (text(architectures=[]), ["experiments[0].architectures:", "at least 1 item"]),
    # unknown names, with did-you-mean
    "unknown-architecture": (
        text(architectures=["tcn", "lstn"]),
        ["experiments[0].architectures[1]: unknown architecture 'lstn'; did you mean 'lstm'? known:", "transformer"],
    ),
    "unknown-metric": (
        text(metrics=["latency", "peak_memroy"]),
        ["experiments[0].metrics[1]: unknown metric 'peak_memroy'; did you mean 'peak_memory'? known:", "latency"],
    ),
    "unknown-task": (
        text(task={"kind": "unifrom"}),
        ["experiments[0].task: unknown task 'unifrom'; did you mean 'uniform'? known:", "uniform"],
    ),
    # architecture and task parameters
    "unknown-arch-param": (
        text(architectures=["lstm", {"kind": "tcn", "kernel_sz": 3}]),
        ["experiments[0].architectures[1].kernel_sz: 'tcn' has no parameter 'kernel_sz'; "
         "its parameters: d_model, kernel_size, levels, dilation_base, dropout"],
    ),
    "harness-arg-as-arch-param": (
        text(architectures=[{"kind": "lstm", "causal": False}]),
        ["experiments[0].architectures[0].causal: 'lstm' has no parameter 'causal'; its parameters: d_model, layers"],
    ),
    "shared-param-one-arch-lacks": (
        text(architectures=["transformer", "lstm"], sweep={"seq_len": 8, "heads": 2}),
        ["experiments[0].sweep.heads: 'lstm' has no parameter 'heads'; its parameters: d_model, layers"],
    ),
    "shared-param-typo": (
        text(sweep={"seq_len": 8, "d_modle": 64}),
        ["experiments[0].sweep.d_modle: 'lstm' has no parameter 'd_modle'; its parameters: d_model, layers"],
    ),
    "unknown-task-param": (
        text(task={"kind": "uniform", "vocab": 3}),
        ["experiments[0].task.vocab: 'uniform' has no parameter 'vocab'; its parameters: vocab_size"],
    ),
    "tcn-kernel_size-1": (
        text(architectures=[{"kind": "tcn", "kernel_size": 1}]),
        ["experiments[0].architectures[0].kernel_size: Input should be greater than or equal to 2, got 1"],
    ),
    "tcn-kernel_size-1-in-list": (
        text(architectures=[{"kind": "tcn", "kernel_size": [3, 1]}]),
        ["experiments[0].architectures[0].kernel_size: Input should be greater than or equal to 2, got 1"],
    ),
    "tcn-dropout-1": (
        text(architectures=[{"kind": "tcn", "dropout": 1.0}]),
        ["experiments[0].architectures[0].dropout: Input should be less than 1, got 1.0"],
    ),
    "task-vocab_size-1": (
        text(task={"kind": "uniform", "vocab_size": 1}),
        ["experiments[0].task.vocab_size: Input should be greater than or equal to 2, got 1"],
    ),
    "transformer-heads-divide-d_model": (
        text(architectures=[{"kind": "transformer", "heads": 3}], sweep={"seq_len": 8, "d_model": 64}),
        ["experiments[0].architectures[0]: d_model 64 is not divisible by heads 3"],
    ),
    "transformer-swept-d_model": (
        text(architectures=[{"kind": "transformer", "heads": 4}], sweep={"seq_len": 8, "d_model": [64, 30]}),
        ["experiments[0].architectures[0]: d_model 30 is not divisible by heads 4"],
    ),
    # enumerations
    "bad-pass": (
        text(passes=["forward", "backwards"]),
        ["experiments[0].passes[1]: Input should be 'forward', 'backward', 'train_step', 'encode' or 'decode', got 'backwards'"],
    ),
    "passes-empty": (text(passes=[]), ["experiments[0].passes:", "at least 1 item"]),
    "bad-device": (text(top={"device": "gpu"}), ["s.yaml: device: Input should be 'auto', 'cpu' or 'cuda', got 'gpu'"]),
    "bad-dtype": (text(top={"dtype": "fp8"}), ["dtype: Input should be 'float32', 'float16' or 'bfloat16', got 'fp8'"]),
    "bad-label": (
        text(architectures=[{"kind": "tcn", "label": "a\nb"}]),
        ["experiments[0].architectures[0].label: String should match pattern", r"got 'a\nb'"],
    ),
    # several errors: the first, and a count
    "two-errors": (text(top={"device": "gpu", "dtype": "fp8"}), ["device:", "got 'gpu' (and 1 more)"]),
    "duplicate-experiment": (
        text(experiments=[
            {"name": "e", "architectures": "lstm", "metrics": "latency", "sweep": {"seq_len": 8}},
            {"name": "e", "architectures": "tcn", "metrics": "latency", "sweep": {"seq_len": 8}},
        ]),
        ["duplicate experiment name 'e'"],
    ),
}


@pytest.mark.parametrize("suite_text, parts", BAD.values(), ids=BAD.keys())
def test_bad_suite_one_line_message(suite_text, parts):
    msg = error(suite_text)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"


@pytest.mark.parametrize("suite_text", [pytest.param(t, id=k) for k, (t, _) in BAD.items()])
def test_bad_suite_message_names_the_file(suite_text):
    assert error(suite_text).startswith(f"{SRC}: ")


def test_unknown_name_without_close_match_has_no_did_you_mean():
    msg = error(text(architectures=["zzzzzz"]))
    assert "unknown architecture 'zzzzzz'" in msg and "did you mean" not in msg and "known: " in msg


@pytest.mark.parametrize(
    "suite_text, where",
    [
        ("name: t\nexperiments:\n  - {name: e, architectures: [lstm\n", "at line 4, column 1: expected ',' or ']'"),
        ("name: t\n  bad: : x\n", "at line 2, column 6: mapping values are not allowed here"),
        ("name: t\n\texperiments: 1\n", "at line 2, column 1: found character"),
    ],
    ids=["unclosed-bracket", "bad-mapping", "tab"],
)
def test_yaml_syntax_error_names_line_and_column(suite_text, where):
    assert error(suite_text).startswith(f"{SRC}: YAML syntax error {where}")


@pytest.mark.parametrize("suite_text", ["", "\n", "# only a comment\n"], ids=["empty", "newline", "comment"])
def test_empty_suite(suite_text):
    assert error(suite_text) == "s.yaml: the suite is empty; it needs at least 'name' and 'experiments'"


@pytest.mark.parametrize("suite_text, kind", [("- a\n- b\n", "list"), ("hello\n", "str"), ("3\n", "int")])
def test_suite_not_a_mapping(suite_text, kind):
    assert error(suite_text) == f"s.yaml: a suite must be a mapping of keys, got a {kind}"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(BadInput) as info:
        archbench.load_suite(path)
    assert str(info.value) == f"suite file {str(path)!r} does not exist"


def test_bad_file_message_starts_with_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text(top={"device": "gpu"}), encoding="utf-8")
    with pytest.raises(BadInput) as info:
        archbench.load_suite(path)
    assert str(info.value).startswith(f"{path}: device: ")


# ------------------------------------------------------------------------- found by review


def test_empty_experiment_seeds_refused():
    assert "experiments[0].seeds" in error(text(seeds=[]))


@pytest.mark.parametrize(
    "suite_text, path",
    [
        (text(architectures=["lstm", {"kind": "tcn", "dilation_base": []}]), "experiments[0].architectures[1].dilation_base"),
        (text(task={"kind": "uniform", "vocab_size": []}), "experiments[0].task.vocab_size"),
    ],
    ids=["arch-param", "task-param"],
)
def test_empty_component_list_param_refused(suite_text, path):
    msg = error(suite_text)
    assert path in msg and "empty" in msg


@pytest.mark.parametrize(
    "suite_text",
    [
        text(sweep={"seq_len": True}),
        "name: t\nexperiments:\n  - {name: e, architectures: lstm, metrics: latency, sweep: {seq_len: yes}}\n",
        text(sweep={"seq_len": 8, "batch": True}),
        text(architectures=[{"kind": "lstm", "layers": True}]),
        text(top={"threads": True}),
    ],
    ids=["seq_len-true", "seq_len-yes", "batch-true", "layers-true", "threads-true"],
)
def test_boolean_is_not_an_integer(suite_text):
    assert "valid integer" in error(suite_text)


def test_duplicate_yaml_key_refused():
    msg = error("name: t\nname: u\nexperiments:\n  - {name: e, architectures: lstm, metrics: latency, sweep: {seq_len: 8}}\n")
    assert "duplicate" in msg and "'name'" in msg and "line 2" in msg


def test_duplicate_experiment_names_the_second():
    msg = error(BAD["duplicate-experiment"][0])
    assert msg.startswith("s.yaml: experiments[1].name: ")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(BadInput) as info:
        archbench.load_suite(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
