"""The depth tracer on hand-made graphs of known depth, and depth against length per architecture."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import archbench
from archbench.metrics.graph import trace, trace_forward


def test_chain_of_adds_has_depth_k():
    x = torch.randn(4, 4)

    def chain(x: torch.Tensor, k: int) -> torch.Tensor:
        for _ in range(k):
            x = x + 1
        return x

    for k in (1, 2, 7):
        assert trace(chain, x, k).depth == k


def test_two_branches_joined_have_depth_max_plus_one():
    a, b = torch.randn(3, 3), torch.randn(3, 3)
    assert trace(lambda a, b: (a * 2) + (((b + 1) + 1) + 1), a, b).depth == 4


def test_matmul_of_two_inputs_is_depth_one():
    assert trace(torch.matmul, torch.randn(8, 5), torch.randn(5, 8)).depth == 1


def test_views_cost_nothing_and_carry_their_producer():
    x = torch.randn(4, 6)
    assert trace(lambda x: (x + 1).t()[:2].unsqueeze(0).select(1, 0) * 2, x).depth == 2


def test_in_place_writes_carry_depth():
    def f(x: torch.Tensor) -> torch.Tensor:
        y = x + 1          # 1
        y.mul_(2)          # 2
        y.sigmoid_()       # 3
        return y + x       # 4
    assert trace(f, torch.randn(3)).depth == 4


def _depths(kind: str, lengths: list[int], **params) -> list[int]:
    model = archbench.build_architecture(kind, vocab_size=16, causal=True, d_model=16, **params)
    return [trace_forward(model, torch.randint(16, (1, n))).depth for n in lengths]


def test_lstm_depth_grows_linearly_tcn_and_transformer_do_not():
    n = [8, 16, 32]
    lstm = _depths("lstm", n, layers=1)
    slope = np.polyfit(np.log(n), np.log(lstm), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)
    assert lstm[2] - lstm[1] == 2 * (lstm[1] - lstm[0])  # a fixed number of ops per step
    assert len(set(_depths("tcn", n, levels=3))) == 1
    assert len(set(_depths("transformer", n, heads=2, layers=1))) == 1


def test_graph_metric_rows(tmp_path):
    from archbench.execute.group import Settings, _context
    from archbench.metrics.graph import Graph
    from archbench.suite.plan import expand

    suite = tmp_path / "g.yaml"
    suite.write_text("name: g\ndevice: cpu\nexperiments:\n  - name: g\n    architectures: [lstm, tcn]\n"
                     "    metrics: [graph]\n    sweep: {seq_len: 16, batch: 2, d_model: 8}\n")
    for point in expand(archbench.load_suite(suite), device="cpu"):
        ctx = _context(point, Settings())
        rows = {r.metric: r.value for r in Graph().run(ctx)}
        # independent of flops(): an LSTM or a TCN uses each weight of its matrix products and convolutions
        # once per token (a multiply and an add: 2 FLOPs); the embedding is a lookup, biases are not counted
        weights = sum(p.numel() for name, p in ctx.model.named_parameters()
                      if p.dim() >= 2 and not name.startswith("embed."))
        assert rows["graph_work"] == 2 * weights * 2 * 16  # batch 2, seq_len 16
        assert rows["parallelism"] == pytest.approx(rows["graph_work"] / rows["graph_depth"])


def test_max_path_length_recurrence_n_minus_1_attention_1_convolution_layers_to_cover(tmp_path):
    from archbench.execute.group import Settings, _context
    from archbench.metrics.graph import PathLength
    from archbench.suite.plan import expand

    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\ndevice: cpu\nexperiments:\n  - name: p\n    architectures: [lstm, transformer,"
                     " {kind: tcn, label: cnn, dilation_base: 1}, tcn]\n    metrics: [path_length]\n"
                     "    sweep: {seq_len: [16, 64], batch: 1, d_model: 8}\n")
    got = {(p.arch, p.seq_len): PathLength().run(_context(p, Settings()))[0].value
           for p in expand(archbench.load_suite(suite), device="cpu")}
    for n in (16, 64):
        assert got["lstm", n] == n - 1 and got["transformer", n] == 1
        assert got["cnn", n] == -(-(n - 1) // 4)                    # ceil((n - 1) / (2 (k - 1))), k = 3
        assert got["tcn", n] == int(np.ceil(np.log2((n - 1) / 4 + 1)))


def test_path_length_reuses_the_points_own_model_and_the_graph_metrics_trace(tmp_path, monkeypatch):
    from archbench.execute.group import Settings, _context
    from archbench.metrics import graph
    from archbench.metrics.receptive_field import probe_model
    from archbench.suite.plan import expand

    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\ndevice: cpu\nexperiments:\n  - name: p\n    architectures: [{kind: lstm, layers: 1},"
                     " {kind: transformer, heads: 2, layers: 1}]\n    metrics: [graph, path_length]\n"
                     "    sweep: {seq_len: 32, batch: 1, d_model: 8}\n")
    traced: list[int] = []
    real = graph.trace_forward
    monkeypatch.setattr(graph, "trace_forward", lambda m, x: traced.append(x.shape[1]) or real(m, x))
    for point in expand(archbench.load_suite(suite), device="cpu"):
        ctx = _context(point, Settings())
        traced.clear()
        depth = {r.metric: r.value for r in graph.Graph().run(ctx)}["graph_depth"]
        path = graph.PathLength().run(ctx)[0].value
        assert traced == [32, 1, 2]  # n once (graph's), then the one-layer model at 1 and 2: it is the point's own
        assert path == {"lstm": 31, "transformer": 1}[point.arch]
        probe = probe_model(point, ctx.model.vocab_size, layers=1)  # what path_length built before: the same depths
        assert depth == real(probe, ctx.batch.inputs[:1]).depth
        assert [real(probe, ctx.batch.inputs[:1, :m]).depth for m in (1, 2)] == \
            [graph.forward_depth(ctx.model, ctx.batch.inputs[:1, :m]) for m in (1, 2)]


def test_tensors_in_flattens_as_pytree_does():
    from torch.utils._pytree import tree_flatten

    from archbench.metrics.graph import tensors_in

    a, b, c, d = (torch.randn(2) for _ in range(4))
    trees = [a, (a, 1, [b, None, (c,)], {"x": d, "y": 2.0}), ((a, b), {"out": [c, d]}), torch.max(a.view(1, 2), 1),
             ([], {}, "s", None), {"k": (b, a)}]
    for tree in trees:
        expected = [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]
        assert [id(t) for t in tensors_in(tree)] == [id(t) for t in expected]
