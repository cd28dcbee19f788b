"""Plugins: the example package through a suite's ``plugins:`` and through an entry point; broken
plugins named in one line; a plugin without ``flops`` / ``receptive_field`` measured all the same."""
from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import archbench
from archbench import registry
from archbench.cli import cli
from archbench.errors import BadInput
from archbench.testing import check_architecture

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "plugin"
PLUGIN_MODULES = ("archbench_gru_example", "bare_plugin", "broken_plugin", "dup_plugin", "num_plugin", "nofwd_plugin",
                  "bare_lstm_plugin")  # the modules these tests import, forgotten after each


@pytest.fixture
def isolated(monkeypatch):
    """Whatever a test registers or imports is gone after it (the registries and sys.modules restored)."""
    for reg in (registry.architectures, registry.tasks):
        reg.names()  # built-ins (and installed plugins) loaded before the snapshot
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    yield monkeypatch
    for name in PLUGIN_MODULES:
        sys.modules.pop(name, None)


def write_dist(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> None:
    """An installed distribution, as pip leaves it: ``<dist>-0.1.0.dist-info`` beside its modules."""
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[archbench.architectures]\n{lines}")
    for name, text in (modules or {}).items():
        (root / f"{name}.py").write_text(textwrap.dedent(text))


def load_entry_points(monkeypatch, root: Path) -> None:
    """Load the architectures' entry points again, with ``root`` on sys.path."""
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(registry.architectures, "_entry_points", "archbench.architectures")
    registry.architectures.names()


def test_the_example_plugin_runs_its_suite_through_the_plugins_list(isolated, tmp_path):
    isolated.syspath_prepend(str(EXAMPLE))
    suite = archbench.load_suite(EXAMPLE / "suite.yaml", allow_plugins=True)
    assert suite.plugins == ["archbench_gru_example"]
    entry = registry.architectures.entry("min_gru")
    assert (entry.source, entry.plugin) == ("archbench_gru_example", "suite")
    result = CliRunner().invoke(cli, ["run", str(EXAMPLE / "suite.yaml"), "--out", str(tmp_path), "--no-progress",
                                      "--no-report", "--allow-plugins"])
    assert result.exit_code == 0, result.output
    df = archbench.load_results(next((tmp_path / "plugin_example").iterdir()))
    assert set(df.status) == {"ok"}
    mine = df[df.arch == "min_gru"].set_index(["experiment", "metric", "seq_len", "causal"]).value
    assert mine["receptive_field", "rf_empirical", 16, True] == 16 and mine["graph", "max_path_length", 64, True] == 63
    assert "min_gru" in result.output  # its Table 1 row


def test_the_example_plugin_passes_the_shared_checks(isolated):
    isolated.syspath_prepend(str(EXAMPLE))
    archbench.load_suite(EXAMPLE / "suite.yaml", allow_plugins=True)
    assert set(check_architecture("min_gru", d_model=8, layers=2).values()) == {"ok"}


def test_the_example_plugin_registers_through_its_entry_point_and_ls_shows_where_from(isolated, tmp_path):
    pyproject = (EXAMPLE / "pyproject.toml").read_text()
    assert 'min_gru = "archbench_gru_example"' in pyproject  # what the installed dist-info below says
    write_dist(tmp_path, "archbench-gru-example", {"min_gru": "archbench_gru_example"})
    isolated.syspath_prepend(str(EXAMPLE))
    load_entry_points(isolated, tmp_path)
    entry = registry.architectures.entry("min_gru")
    assert entry.source == "archbench_gru_example"
    assert entry.plugin == "entry point 'min_gru' of archbench-gru-example 0.1.0"
    listing = CliRunner().invoke(cli, ["ls"]).output
    line = next(l for l in listing.splitlines() if l.strip().startswith("min_gru"))
    assert "[archbench_gru_example; plugin: entry point 'min_gru' of archbench-gru-example 0.1.0]" in line
    assert "[archbench.architectures.gru]" in listing  # built-ins say their module only


def test_an_entry_point_naming_a_class_registers_it_under_the_entry_point_name(isolated, tmp_path):
    write_dist(tmp_path, "bare-dist", {"bare": "bare_plugin:Bare"}, {"bare_plugin": """
        from archbench.architectures.lstm import LSTM

        class Bare(LSTM):
            "An LSTM its module does not register."
    """})
    load_entry_points(isolated, tmp_path)
    entry = registry.architectures.entry("bare")
    assert entry.obj.__name__ == "Bare" and entry.plugin == "entry point 'bare' of bare-dist 0.1.0"


BROKEN = {
    "import": ({"broken": "broken_plugin"}, {"broken_plugin": "import not_a_module_anywhere\n"},
               "plugin 'broken' = 'broken_plugin' (archbench.architectures, from broken-dist 0.1.0) failed to import: "
               "ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    "duplicate": ({"dup": "dup_plugin"}, {"dup_plugin": """
        import archbench
        from archbench.architectures.lstm import LSTM

        archbench.register_architecture("gru")(LSTM)
    """}, "plugin 'dup' = 'dup_plugin' (archbench.architectures, from broken-dist 0.1.0): "
          "architecture 'gru' is already registered (by archbench.architectures.gru)"),
    "not callable": ({"num": "num_plugin:SIZE"}, {"num_plugin": "SIZE = 3\n"},
                     "plugin 'num' = 'num_plugin:SIZE' (archbench.architectures, from broken-dist 0.1.0): "
                     "architecture 'num' (int) is a int, not a class or factory to build it with"),
    "no forward": ({"nofwd": "nofwd_plugin"}, {"nofwd_plugin": """
        import archbench
        from torch import nn

        @archbench.register_architecture("nofwd")
        class NoForward(nn.Module):
            pass
    """}, "plugin 'nofwd' = 'nofwd_plugin' (archbench.architectures, from broken-dist 0.1.0): "
          "architecture 'nofwd' (NoForward) does not define forward(); the contract is in archbench/architectures/base.py (tasks: archbench/tasks/base.py)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_entry_point_is_one_line_naming_the_plugin_and_its_distribution(isolated, tmp_path, case):
    entry_points, modules, message = BROKEN[case]
    write_dist(tmp_path, "broken-dist", entry_points, modules)
    with pytest.raises(BadInput) as exc:
        load_entry_points(isolated, tmp_path)
    assert str(exc.value) == message


def test_a_suite_plugin_that_cannot_be_imported_is_one_line(isolated, tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nplugins: [no_such_plugin_module]\nexperiments:\n  - name: e\n"
                     "    architectures: [lstm]\n    metrics: [flops]\n    sweep: {seq_len: 8}\n")
    with pytest.raises(BadInput) as exc:
        archbench.load_suite(suite, allow_plugins=True)
    assert str(exc.value) == (f"{suite}: plugins[0]: plugin module 'no_such_plugin_module' failed to import: "
                              "ModuleNotFoundError: No module named 'no_such_plugin_module'")
    suite.write_text(suite.read_text().replace("no_such_plugin_module", "not a module"))
    with pytest.raises(BadInput, match=r"plugins\[0\]: String should match pattern"):
        archbench.load_suite(suite)


def test_a_plugin_without_flops_or_receptive_field_is_measured_and_says_not_provided(isolated, tmp_path):
    (tmp_path / "bare_lstm_plugin.py").write_text(textwrap.dedent('''
        import archbench
        from torch import nn

        @archbench.register_architecture("bare_lstm")
        class BareLSTM(archbench.Architecture):
            "An LSTM with the contract's constructor and forward, and no flops or receptive_field."

            depth_parameter = "layers"

            def __init__(self, vocab_size, causal=True, d_model: int = 8, layers: int = 1):
                super().__init__()
                self.vocab_size, self.causal = vocab_size, causal
                self.embed = nn.Embedding(vocab_size, d_model)
                self.rnn = nn.LSTM(d_model, d_model, layers, batch_first=True)
                self.head = nn.Linear(d_model, vocab_size)

            def forward(self, x):
                return self.head(self.rnn(self.embed(x))[0])
    '''))
    isolated.syspath_prepend(str(tmp_path))
    suite = tmp_path / "s.yaml"
    suite.write_text("name: bare\ndevice: cpu\nplugins: [bare_lstm_plugin]\n"
                     "timing: {min_samples: 3, min_time: 0.0, max_time: 0.05, warmup: 0.0}\nexperiments:\n"
                     "  - name: e\n    architectures: [bare_lstm]\n"
                     "    metrics: [latency, flops, receptive_field, graph, path_length]\n"
                     "    sweep: {seq_len: [8, 16, 32], batch: 1, d_model: 4}\n")
    result = CliRunner().invoke(cli, ["run", str(suite), "--out", str(tmp_path / "out"), "--no-progress",
                                      "--allow-plugins"])
    assert result.exit_code == 0, result.output
    df = archbench.load_results(next((tmp_path / "out" / "bare").iterdir()))
    at = df[df.seq_len == 16].set_index("metric")
    for metric in ("flops", "rf_theoretical", "graph_work", "parallelism"):
        assert at.status[metric] == "skipped" and math.isnan(at.value[metric])
        assert at.error[metric].startswith("not provided: bare_lstm defines no")
    for metric, value in (("rf_empirical", 16), ("max_path_length", 15)):
        assert at.status[metric] == "ok" and at.value[metric] == value
    assert at.status["latency"] == "ok" and at.status["graph_depth"] == "ok"
    assert "achieved_flops" not in at.index  # no FLOP count, no FLOP/s
    assert "bare_lstm" in result.output  # Table 1: depth measured, work "-"


def test_the_good_plugins_load_beside_a_broken_one_and_the_error_counts_the_rest(isolated, tmp_path):
    write_dist(tmp_path, "mixed-dist", {"a_broken": "broken_plugin", "b_bare": "bare_plugin:Bare",
                                        "c_num": "num_plugin:SIZE"},
               {"broken_plugin": "import not_a_module_anywhere\n", "num_plugin": "SIZE = 3\n", "bare_plugin": """
                    from archbench.architectures.lstm import LSTM

                    class Bare(LSTM):
                        "An LSTM its module does not register."
                """})
    with pytest.raises(BadInput, match=r"^plugin 'a_broken' .* failed to import: .*\(and 1 more broken plugins\)$"):
        load_entry_points(isolated, tmp_path)
    assert registry.architectures.entry("b_bare").plugin == "entry point 'b_bare' of mixed-dist 0.1.0"
