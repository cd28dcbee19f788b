"""The synthetic tasks: worked rows, statistics, and that the guess baseline is what a blind
predictor scores."""
from __future__ import annotations

import math
import re

import pytest
import torch

from archbench import registry
from archbench.tasks import build_task

SEQ2SEQ = {  # kind -> (params, seq_len) small enough to sample thousands of rows quickly
    "copy_memory": ({"symbols": 3}, 12),
    "mqar": ({"vocab_size": 12, "pairs": 3}, 16),
    "selective_copy": ({"vocab_size": 8, "tokens": 3}, 10),
    "reverse": ({"vocab_size": 6}, 8),
    "sort": ({"vocab_size": 6}, 8),
    "addition": ({}, 8),
}


def sample(kind: str, causal: bool, n: int = 64, seed: int = 0, **over):
    params, seq_len = SEQ2SEQ[kind]
    task = build_task(kind, over.pop("seq_len", seq_len), causal, **{**params, **over})
    return task, task.sample(n, torch.Generator().manual_seed(seed))


def test_every_builtin_task_is_registered_and_versioned():
    for kind in [*SEQ2SEQ, "adding", "uniform"]:
        cls = registry.tasks.get(kind)
        assert isinstance(cls.version, int) and cls.__doc__ and "row" in cls.__doc__.lower()


# --------------------------------------------------------------------------- worked rows (docstrings)


@pytest.mark.parametrize("causal, inputs, targets", [
    (True, [3, 1, 6, 6, 0, 6, 6, 1], [6, 6, 1, 3]),
    (False, [3, 1, 6, 6, 0, 0, 0, 0], [6, 6, 1, 3]),
])
def test_reverse_worked_row(causal, inputs, targets):
    task = build_task("reverse", 8, causal, vocab_size=8)
    b = task.frame(torch.tensor([[3, 1, 6, 6]]), task.answer(torch.tensor([[3, 1, 6, 6]])), 0, 0)
    assert b.inputs[0].tolist() == inputs
    assert b.targets[0][b.mask[0]].tolist() == targets
    assert b.mask[0].nonzero().flatten().tolist() == [4, 5, 6, 7]


def test_sort_worked_row():
    task = build_task("sort", 8, True, vocab_size=8)
    q = torch.tensor([[3, 1, 6, 6]])
    b = task.frame(q, task.answer(q), 0, 0)
    assert b.inputs[0].tolist() == [3, 1, 6, 6, 0, 1, 3, 6]
    assert b.targets[0][b.mask[0]].tolist() == [1, 3, 6, 6]


@pytest.mark.parametrize("causal, inputs, targets, scored", [
    (True, [4, 7, 1, 0, 0, 9, 4, 7], [7, 1, 0, 0, 9, 4, 7, 1], [5, 6, 7]),
    (False, [4, 7, 1, 0, 0, 9, 9, 9], [0, 0, 0, 0, 0, 4, 7, 1], list(range(8))),
])
def test_copy_memory_worked_row(causal, inputs, targets, scored, monkeypatch):
    task = build_task("copy_memory", 8, causal, symbols=3)
    real_randint = torch.randint
    monkeypatch.setattr(torch, "randint", lambda *a, **k: torch.tensor([[4, 7, 1]]) if a[:2] == (1, 9) else real_randint(*a, **k))
    b = task.sample(1, torch.Generator().manual_seed(0))
    assert b.inputs[0].tolist() == inputs and b.targets[0].tolist() == targets
    assert b.mask[0].nonzero().flatten().tolist() == scored
    assert b.scored[0].nonzero().flatten().tolist() == [5, 6, 7]  # accuracy: the answer alone
    assert task.delay == 2


def test_selective_copy_worked_row():
    task = build_task("selective_copy", 10, False, vocab_size=8, tokens=3)
    q = torch.tensor([[0, 5, 0, 0, 2, 0, 7]])
    b = task.frame(q, torch.tensor([[5, 2, 7]]), 1, 1)
    assert b.inputs[0].tolist() == [0, 5, 0, 0, 2, 0, 7, 1, 1, 1]
    assert b.targets[0][b.mask[0]].tolist() == [5, 2, 7]


# ------------------------------------------------------------------------------------ statistics


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind", list(SEQ2SEQ))
def test_shapes_ranges_and_answers(kind, causal):
    task, b = sample(kind, causal, n=256)
    B, T = 256, task.seq_len
    assert b.inputs.shape == b.targets.shape == b.mask.shape == (B, T)
    assert b.inputs.dtype == b.targets.dtype == torch.long and b.mask.dtype == torch.bool
    assert int(b.inputs.min()) >= 0 and int(b.inputs.max()) < task.vocab_size
    assert int(b.targets[b.mask].min()) >= 0 and int(b.targets[b.mask].max()) < task.vocab_size
    answers = b.scored.sum(1)
    assert answers.min() == answers.max() and int(answers[0]) > 0  # the same number of answers per row
    if causal:  # decoder framing: each target is the next input token
        assert torch.equal(b.targets[:, :-1], b.inputs[:, 1:])


@pytest.mark.parametrize("kind", list(SEQ2SEQ))
def test_answers_follow_the_rule(kind):
    task, b = sample(kind, False, n=128)
    for row in range(128):
        x, y = b.inputs[row], b.targets[row][b.scored[row]]
        if kind == "reverse":
            assert y.tolist() == x[: task.seq_len // 2].flip(0).tolist()
        elif kind == "sort":
            assert y.tolist() == sorted(x[: task.seq_len // 2].tolist())
        elif kind == "selective_copy":
            q = x[: task.seq_len - task.tokens]
            assert y.tolist() == q[q >= 2].tolist()
        elif kind == "copy_memory":
            assert y.tolist() == x[: task.symbols].tolist()
        elif kind == "addition":
            number = lambda tokens: int("".join(str(t - 1) for t in tokens))  # noqa: E731
            k = task.digits
            assert x[k] == task.PLUS and number(x[:k].tolist()) + number(x[k + 1:2 * k + 1].tolist()) == \
                number(y.flip(0).tolist())
        elif kind == "mqar":
            pairs = dict(zip(x[0:2 * task.pairs:2].tolist(), x[1:2 * task.pairs:2].tolist()))
            keys = x[b.scored[row]].tolist()
            assert y.tolist() == [pairs[k] for k in keys] and sorted(keys) == sorted(pairs)
            half = task.vocab_size // 2
            assert all(1 <= k < half for k in pairs) and all(half <= v < task.vocab_size for v in pairs.values())


def test_mqar_queries_follow_a_power_law():
    task, b = sample("mqar", True, n=2000, seq_len=64, pairs=2, alpha=0.1)
    first = b.mask.float().sum(0)[4:]  # query counts by position after the pairs
    slots = first[0::2]
    assert slots[0] > slots[5] > slots[-1] > 0  # decreasing, but far queries do happen


@pytest.mark.parametrize("kind", list(SEQ2SEQ) + ["adding", "uniform"])
def test_the_generator_is_the_only_randomness(kind):
    build = (lambda c: build_task(kind, 16, c)) if kind in ("adding", "uniform") else (lambda c: sample(kind, c)[0])
    task = build(True)
    state = torch.random.get_rng_state()
    a = task.sample(8, torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.random.get_rng_state())
    b = task.sample(8, torch.Generator().manual_seed(5))
    c = task.sample(8, torch.Generator().manual_seed(6))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)


# -------------------------------------------------------- the baseline is what a blind guess scores


def blind_scores(task, n=6000):
    """Loss and accuracy of the best input-blind predictor: per position, the targets' own
    distribution (estimated from n rows)."""
    b = task.sample(n, torch.Generator().manual_seed(123))
    V = task.vocab_size
    counts = torch.zeros(task.seq_len, V)
    for t in range(task.seq_len):
        rows = b.mask[:, t]
        if rows.any():
            counts[t] = torch.bincount(b.targets[rows, t], minlength=V).float()
    p = counts / counts.sum(1, keepdim=True).clamp_min(1)
    pos = torch.arange(task.seq_len).expand(n, -1)
    loss = -(p[pos[b.mask], b.targets[b.mask]].log()).mean()
    guess = p.argmax(1)
    acc = (guess[pos[b.scored]] == b.targets[b.scored]).float().mean()
    return float(loss), float(acc)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind", list(SEQ2SEQ))
def test_baseline_is_the_blind_predictors_score(kind, causal):
    task, _ = sample(kind, causal)
    loss, acc = blind_scores(task)
    base = task.baseline()
    assert base.loss == pytest.approx(loss, abs=0.02)
    assert base.accuracy == pytest.approx(acc, abs=0.03)


def test_copy_memory_baseline_is_the_papers():
    # Bai et al.: 10 ln 8 / (T + 20) when every position is scored (the labelling framing)
    task = build_task("copy_memory", 120, False)
    assert task.baseline().loss == pytest.approx(10 * math.log(8) / 120)
    assert build_task("copy_memory", 120, True).baseline().loss == pytest.approx(math.log(8))


def test_adding_batch_and_baseline():
    task = build_task("adding", 50, True, tolerance=0.04)
    b = task.sample(20000, torch.Generator().manual_seed(0))
    values, markers = b.features[..., 0], b.features[..., 1]
    assert b.features.shape == (20000, 50, 2) and torch.all(markers.sum(1) == 2)
    assert torch.all(markers[:, :25].sum(1) == 1)  # one marker in each half
    assert torch.allclose(b.targets[:, -1], (values * markers).sum(1))
    assert int(b.mask.sum()) == 20000 and bool(b.mask[:, -1].all())
    guess = torch.ones(20000)  # the mean of the sum
    assert float(((b.targets[:, -1] - guess) ** 2).mean()) == pytest.approx(task.baseline().loss, rel=0.03)
    hit = ((b.targets[:, -1] - guess).abs() < 0.04).float().mean()
    assert float(hit) == pytest.approx(task.baseline().accuracy, abs=0.01)


@pytest.mark.parametrize("kind, params, seq_len, message", [
    ("copy_memory", {"symbols": 10}, 20, "2 * symbols + 1"),
    ("reverse", {}, 7, "even seq_len"),
    ("mqar", {"pairs": 8}, 30, "4 * pairs"),
    ("selective_copy", {"tokens": 8}, 15, "2 * tokens"),
])
def test_shape_checks(kind, params, seq_len, message):
    cls = registry.tasks.get(kind)
    full = registry.tasks.validate(kind, params)
    with pytest.raises(ValueError, match=re.escape(message)):
        cls.check_shape(full, seq_len)


def test_mqar_refuses_more_pairs_than_keys():
    with pytest.raises(ValueError, match="distinct keys"):
        registry.tasks.validate("mqar", {"vocab_size": 8, "pairs": 4})
