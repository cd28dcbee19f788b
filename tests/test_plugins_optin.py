"""A suite's ``plugins:`` are Python code: imported only when asked, never from the current directory
by accident, and a plugin that registers nothing or exits is an error naming it. A plain ``nn.Module``
following the tensor contract gets every empirical metric."""
from __future__ import annotations

import math
import sys
import textwrap

import pytest
from click.testing import CliRunner

import archbench
from archbench import registry
from archbench.cli import cli
from archbench.errors import BadInput

MODULES = ("optin_plugin", "exiting_plugin", "cwd_only_plugin", "plain_module_plugin", "trusted_plugin")
PLUGIN = '''
import archbench
from archbench.architectures.lstm import LSTM


@archbench.register_architecture("{name}")
class Registered(LSTM):
    "An LSTM under another name."
'''


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """The registries and sys.modules as they were, after each test; tmp_path holds the plugin modules."""
    for reg in (registry.architectures, registry.tasks, registry.metrics):
        reg.names()
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    yield monkeypatch
    for name in MODULES:
        sys.modules.pop(name, None)


def _suite(tmp_path, plugin: str, arch: str = "lstm", metrics: str = "[flops]", lengths: str = "8") -> str:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nthreads: 1\nplugins: [{plugin}]\n"
                    "timing: {min_samples: 3, min_time: 0.0, max_time: 0.05, warmup: 0.0}\n"
                    f"experiments:\n  - name: e\n    architectures: [{arch}]\n    metrics: {metrics}\n"
                    f"    sweep: {{seq_len: {lengths}, batch: 1, d_model: 4}}\n")
    return str(path)


def test_plugins_are_refused_unless_asked_for(isolated, tmp_path):
    (tmp_path / "optin_plugin.py").write_text(PLUGIN.format(name="optin_lstm"))
    isolated.syspath_prepend(str(tmp_path))
    suite = _suite(tmp_path, "optin_plugin", "optin_lstm")
    with pytest.raises(BadInput, match=r"plugins\[0\]: 'optin_plugin' is Python code to import; .*--allow-plugins"):
        archbench.load_suite(suite)
    assert "optin_plugin" not in sys.modules  # not imported
    result = CliRunner().invoke(cli, ["plan", suite])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1 and "optin_plugin" in result.stderr
    result = CliRunner().invoke(cli, ["plan", suite, "--allow-plugins"])
    assert result.exit_code == 0, result.output
    assert "optin_lstm" in result.stdout


def test_an_entry_point_module_needs_no_flag(isolated, tmp_path):
    (tmp_path / "trusted_plugin.py").write_text(PLUGIN.format(name="trusted_lstm"))
    isolated.syspath_prepend(str(tmp_path))
    isolated.setattr(registry, "entry_point_modules", lambda: {"trusted_plugin"})
    assert archbench.load_suite(_suite(tmp_path, "trusted_plugin", "trusted_lstm")).plugins == ["trusted_plugin"]


def test_a_plugin_that_registers_nothing_is_an_error(isolated, tmp_path):
    with pytest.raises(BadInput, match="plugin module 'os' registers no architecture, task or metric"):
        archbench.load_suite(_suite(tmp_path, "os"), allow_plugins=True)


def test_a_plugin_that_exits_is_an_error_naming_it(isolated, tmp_path):
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit(0)\n")
    isolated.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(cli, ["plan", _suite(tmp_path, "exiting_plugin"), "--allow-plugins"])
    assert result.exit_code == 2
    assert "plugin module 'exiting_plugin' called sys.exit(0)" in result.stderr


def test_a_plugin_is_never_imported_from_the_current_directory_by_accident(isolated, tmp_path):
    (tmp_path / "cwd_only_plugin.py").write_text(PLUGIN.format(name="cwd_lstm"))
    isolated.chdir(tmp_path)
    isolated.syspath_prepend("")  # as `python -m archbench` puts it
    isolated.delenv("PYTHONPATH", raising=False)
    with pytest.raises(BadInput, match="'cwd_only_plugin' is found only in the current directory"):
        archbench.load_suite(_suite(tmp_path, "cwd_only_plugin", "cwd_lstm"), allow_plugins=True)
    assert "cwd_only_plugin" not in sys.modules
    isolated.setenv("PYTHONPATH", str(tmp_path))  # named on purpose: fine
    archbench.load_suite(_suite(tmp_path, "cwd_only_plugin", "cwd_lstm"), allow_plugins=True)


PLAIN = '''
import archbench
from torch import nn


@archbench.register_architecture("plain_gru")
class PlainGRU(nn.Module):
    "A GRU written as a plain nn.Module: the tensor contract, no archbench base class."

    def __init__(self, vocab_size, causal=True, d_model: int = 8):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.rnn = nn.GRU(d_model, d_model, batch_first=True)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, x):                       # x: (B, T) token ids
        return self.head(self.rnn(self.embed(x))[0])  # (B, T, V)
'''


def test_a_plain_module_gets_every_empirical_metric(isolated, tmp_path):
    (tmp_path / "plain_module_plugin.py").write_text(textwrap.dedent(PLAIN))
    isolated.syspath_prepend(str(tmp_path))
    suite = _suite(tmp_path, "plain_module_plugin", "plain_gru",
                   "[latency, peak_memory, flops, receptive_field, graph, path_length]", "[8, 16, 32]")
    result = CliRunner().invoke(cli, ["run", suite, "--out", str(tmp_path / "out"), "--no-progress", "--no-report",
                                      "--allow-plugins"])
    assert result.exit_code == 0, result.output
    df = archbench.load_results(next((tmp_path / "out" / "s").iterdir()))
    at = df[df.seq_len == 16].set_index("metric")
    for metric in ("latency", "peak_memory", "rf_empirical", "erf_90", "graph_depth"):
        assert at.status[metric] == "ok", (metric, at.error.get(metric))
    assert at.value["rf_empirical"] == 16  # probed at the last output: a causal GRU sees all 16 positions
    for metric in ("flops", "rf_theoretical", "max_path_length"):  # need a FLOP law, a closed form, a depth
        assert at.status[metric] == "skipped" and math.isnan(at.value[metric])
        assert "not provided" in str(at.error[metric])
    table = [line for line in result.stdout.splitlines() if line.startswith("plain_gru")]
    assert table and "nan" not in table[0] and " vs -" in table[0]
