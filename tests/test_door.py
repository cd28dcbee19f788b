"""Refused at the door: shared labels, absurd sizes, unreadable suites and bad options, each one line;
YAML merge keys accepted."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import archbench
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


# --------------------------------------------------------------------- bounded doors (issue 28)

CORPUS = Path(__file__).parent / "bad_suites"
# refused by `plan` itself (the memory estimate is `run`'s: bad_suites/*-beyond-memory.yaml)
AT_PLAN = sorted(p for p in CORPUS.glob("*.yaml") if not p.stem.endswith("beyond-memory") and (
    p.stem.startswith(("encoder-decoder-", "seq2seq-", "generation-", "tcn-levels")) or "beyond-any" in p.stem))


def test_the_bounded_doors_are_in_the_corpus():
    names = {p.stem for p in AT_PLAN}
    assert len(AT_PLAN) >= 20 and "encoder_layers-beyond-any-model" in names
    assert {"generation-cache-beyond-memory", "encoder-decoder-beyond-memory"} <= {p.stem for p in CORPUS.glob("*")}


@pytest.mark.parametrize("path", AT_PLAN, ids=lambda p: p.stem)
def test_plan_refuses_at_the_door_with_one_line_naming_the_path(path):
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: ") and expect in line, line
    assert result.stdout == ""


@pytest.mark.parametrize(("arch", "param", "ceiling"), [
    ("lstm", "d_model", 2**16), ("lstm", "layers", 2**10), ("tcn", "levels", 2**10), ("transformer", "heads", 2**10),
    ("transformer", "max_len", 2**24), ("ssm", "state", 2**16), ("encoder_decoder", "encoder_layers", 2**10),
    ("encoder_decoder", "decoder_layers", 2**10), ("encoder_decoder", "cross_layers", 2**10),
    ("local_attention", "window", 2**24), ("tcn", "kernel_size", 2**24), ("tcn", "dilation_base", 2**24),
])
def test_every_size_has_a_ceiling_shown_by_ls_and_refused_one_above(arch, param, ceiling):
    from archbench import registry

    [row] = [r for r in registry.architectures.parameters(arch) if r["name"] == param]
    assert f"<={ceiling}" in row["constraints"]
    with pytest.raises(BadInput, match=rf"^{arch}\.{param}: {ceiling + 1} is beyond any model archbench builds; "
                                       rf"allowed: \d+ to {ceiling}$"):
        archbench.build_architecture(arch, vocab_size=4, **{param: ceiling + 1})


@pytest.mark.parametrize(("task", "param", "ceiling"), [
    ("uniform", "vocab_size", 2**24), ("copy_memory", "symbols", 2**24), ("copy_memory", "alphabet", 2**24),
    ("mqar", "pairs", 2**24), ("selective_copy", "tokens", 2**24),
])
def test_every_task_size_has_a_ceiling(task, param, ceiling):
    text = suite(extra="").replace("    metrics: [flops]", f"    task: {{kind: {task}, {param}: {ceiling + 1}}}\n"
                                                          "    metrics: [flops]")
    with pytest.raises(BadInput, match=rf"experiments\[0\].task.{param}: {ceiling + 1} is beyond any model"):
        parse_suite(text, "s.yaml")


def test_a_deep_encoder_decoder_is_estimated_without_building_its_depth(monkeypatch):
    """Each depth parameter is extrapolated from traces at 2 and 4 layers; the weights, linear in depth,
    come out exactly as counted on the model built on the meta device."""
    import torch

    from archbench.execute import footprint
    from archbench.suite.plan import expand
    from archbench.tasks.base import build_task

    traced = []
    real = footprint._traced
    monkeypatch.setattr(footprint, "_traced", lambda point, params: traced.append(params) or real(point, params))
    text = suite(archs="[{kind: encoder_decoder, encoder: lstm, decoder: transformer, encoder_layers: 11, "
                       "decoder_layers: 7, d_model: 16, heads: 2}]").replace("metrics: [flops]",
                                                                              "task: reverse\n    metrics: [latency]")
    [point] = expand(parse_suite(text, "s.yaml"), device="cpu")
    fp = footprint.estimate(point)
    assert [(p["encoder_layers"], p["decoder_layers"]) for p in traced] == [(2, 2), (4, 2), (2, 4)]
    task = build_task(point.task, point.seq_len, True, "encoder_decoder", **dict(point.task_params))
    with torch.device("meta"):
        model = archbench.build_architecture("encoder_decoder", vocab_size=task.vocab_size, **point.params)
    assert fp.weights == sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
