"""Refused at the door: shared labels, absurd sizes, unreadable suites and bad options, each one line;
YAML merge keys accepted."""
from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from archbench.cli import cli
from archbench.errors import BadInput
from archbench.suite.load import load_suite, parse_suite

SUITE = "name: s\n{top}experiments:\n  - name: e\n    architectures: {archs}\n    metrics: [flops]\n" \
        "    sweep: {{seq_len: {seq_len}}}\n{extra}"


def suite(top: str = "", archs: str = "[lstm]", extra: str = "", seq_len: str = "8") -> str:
    return SUITE.format(top=top, archs=archs, extra=extra, seq_len=seq_len)


def test_two_architectures_of_one_experiment_may_not_share_a_label():
    with pytest.raises(BadInput, match=r"experiments\[0\].architectures: architectures\[0\] and architectures\[1\] "
                                       r"are both labelled 'lstm'"):
        parse_suite(suite(archs="[lstm, {kind: tcn, label: lstm}]"), "s.yaml")
    with pytest.raises(BadInput, match="both labelled 'cnn'"):
        parse_suite(suite(archs="[{kind: tcn, label: cnn}, {kind: tcn, label: cnn, levels: 2}]"), "s.yaml")
    parse_suite(suite(archs="[{kind: tcn, label: a}, {kind: tcn, label: b, levels: 2}]"), "s.yaml")


@pytest.mark.parametrize(("text", "where", "bound"), [
    (suite(top="threads: 2147483648\n"), "threads", str(os.cpu_count())),
    (suite(top=f"threads: {(os.cpu_count() or 1) + 1}\n"), "threads", str(os.cpu_count())),
    (suite(extra="    training: {eval_size: 1000000000000000000000000000000}\n"), "training.eval_size", "1000000"),
    (suite(extra="    training: {steps: 1000000000000}\n"), "training.steps", "100000000"),
    (suite(seq_len="1099511627776"), "sweep.seq_len", "16777216"),
])
def test_absurd_sizes_are_refused_with_the_allowed_range(text, where, bound):
    with pytest.raises(BadInput, match=rf"{where}.*less than or equal to {bound}"):
        parse_suite(text, "s.yaml")


def test_yaml_merge_keys_are_read_and_the_keys_beside_them_win():
    text = ("name: s\nx-sweep: &s {seq_len: 8, d_model: 8}\nexperiments:\n"
            "  - name: a\n    architectures: [lstm]\n    metrics: [flops]\n    sweep: {<<: *s, seq_len: 16}\n"
            "  - name: b\n    architectures: [lstm]\n    metrics: [flops]\n    sweep:\n      <<: *s\n")
    s = parse_suite(text, "s.yaml")
    assert s.experiments[0].sweep.seq_len == [16] and s.experiments[1].sweep.seq_len == [8]
    assert s.experiments[0].sweep.shared() == {"d_model": [8]}
    with pytest.raises(BadInput, match="duplicate key 'seq_len'"):  # a key written twice is still refused
        parse_suite(text.replace("{<<: *s, seq_len: 16}", "{<<: *s, seq_len: 16, seq_len: 32}"), "s.yaml")


@pytest.mark.parametrize("path", ["/proc/self/mem", "/", "/nonexistent/s.yaml"])
def test_an_unreadable_suite_is_one_line(path):
    with pytest.raises(BadInput):
        load_suite(path)
    result = CliRunner().invoke(cli, ["plan", path])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output


@pytest.mark.parametrize("args", [
    ["plan"], ["plan", "s.yaml", "--no-such-option"], ["run", "s.yaml", "--workers", "many"],
    ["run", "s.yaml", "--device", "tpu"], ["compare", "a"], ["no-such-verb"], ["--bogus"],
])
def test_usage_errors_are_one_line(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_an_architecture_parameter_beyond_any_model_is_refused_before_building():
    with pytest.raises(BadInput, match=r"experiments\[0\].sweep.layers: 10+ is beyond any model archbench builds; allowed: 1 to 1024"):
        parse_suite(suite().replace("seq_len: 8}", "seq_len: 8, layers: 1000000000000000000000000000000}"), "s.yaml")
