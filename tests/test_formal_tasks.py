"""Delétang et al.'s tasks and the word problem: answers checked against independent computations, and the
blind-guess baseline against what a blind predictor scores on sampled rows."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from archbench.tasks import build_task
from archbench.tasks.word_problem import permutations

CLASSIFY = ("parity_check", "even_pairs", "modular_arithmetic", "cycle_navigation")
TRANSDUCE = ("reverse_string", "stack_manipulation", "duplicate_string", "binary_addition", "bucket_sort")


def rows(kind, n, count=64, seed=0, **params):
    task = build_task(kind, n, True, **params)
    return task, task.sample(count, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [1, 2, 7, 12])
def test_regular_labels_against_plain_python(n):
    for kind in ("parity_check", "even_pairs", "cycle_navigation"):
        _, b = rows(kind, n)
        for x, y, m in zip(b.inputs.tolist(), b.targets.tolist(), b.mask.tolist()):
            want = {"parity_check": sum(x) % 2,
                    "even_pairs": sum(a != c for a, c in zip(x, x[1:])) % 2,
                    "cycle_navigation": sum(v - 1 for v in x) % 5}[kind]
            assert m == [False] * (len(x) - 1) + [True] and y[-1] == want


@pytest.mark.parametrize("n", [1, 4, 9, 15])
def test_modular_arithmetic_is_pythons_own_precedence(n):
    _, b = rows("modular_arithmetic", n)
    assert b.inputs.shape[1] == (n if n % 2 else n - 1)
    for x, y in zip(b.inputs.tolist(), b.targets.tolist()):
        text = "".join(str(v) if v < 5 else "+-*"[v - 5] for v in x)
        assert y[-1] == eval(text) % 5  # digits and + - * only


def decode_binary(digits):
    return sum(d << i for i, d in enumerate(digits))


@pytest.mark.parametrize("n", [1, 2, 3, 8, 30])
def test_binary_addition_adds(n):
    _, b = rows("binary_addition", n)
    assert b.inputs.shape[1] == n + n + 1
    for x, y, scored in zip(b.inputs.tolist(), b.targets.tolist(), b.scored.tolist()):
        question, out = x[:n], y[n:]
        if n <= 2:
            total = decode_binary(question)
        else:
            plus = question.index(2)
            total = decode_binary(question[:plus]) + decode_binary(question[plus + 1:])
        end = out.index(2)
        assert decode_binary(out[:end]) == total and (end == 1 or out[end - 1] == 1)  # no trailing zeros
        assert all(v == 0 for v in out[end + 1:]) and scored[n:] == [i <= end for i in range(n + 1)]
        if n > 2:
            assert question.count(2) == 1 and 0 < question.index(2) < n - 1
            assert all(decode_binary(p) > 0 for p in (question[:question.index(2)], question[question.index(2) + 1:]))


@pytest.mark.parametrize("n", [1, 2, 6, 20])
def test_stack_manipulation_against_a_string_stack(n):
    _, b = rows("stack_manipulation", n)
    for x, y, scored in zip(b.inputs.tolist(), b.targets.tolist(), b.scored.tolist()):
        x = x[:n]
        depth = next((i for i, v in enumerate(x) if v > 1), n)
        assert 1 <= depth and (depth < n or n == 1)
        stack = "".join(map(str, x[:depth]))
        for action in x[depth:]:
            stack = stack[:-1] if action == 2 else stack + str(action - 3)
        want = [int(c) for c in reversed(stack)] + [2]
        assert y[n:n + len(want)] == want and not any(y[n + len(want):])
        assert sum(scored) == len(want)


@pytest.mark.parametrize("n", [1, 5, 16])
def test_string_transductions(n):
    for kind, answer in (("reverse_string", lambda s: s[::-1]), ("duplicate_string", lambda s: s + s),
                         ("bucket_sort", sorted)):
        task, b = rows(kind, n)
        blank = task.symbols
        for x, y, m in zip(b.inputs.tolist(), b.targets.tolist(), b.mask.tolist()):
            out = answer(x[:n])
            assert x[n:] == [blank] * len(out) and y[n:] == list(out) and m == [False] * n + [True] * len(out)


def compose(a, b):
    """a, then b, as permutation arrays: i -> b[a[i]]."""
    return b[a]


@pytest.mark.parametrize("group,order", [("S3", 6), ("A4", 12), ("A5", 60), ("S5", 120)])
def test_word_problem_permutation_groups(group, order):
    task, b = rows("word_problem", 9, group=group)
    n = {"S3": 3, "A4": 4, "A5": 5, "S5": 5}[group]
    elements = [np.array(p) for p in itertools.permutations(range(n))]
    if group in ("A4", "A5"):  # the even permutations: determinant of the permutation matrix +1
        elements = [p for p in elements if round(np.linalg.det(np.eye(n)[p])) == 1]
    assert task.vocab_size == order == len(elements) and (elements[0] == np.arange(n)).all()
    assert [tuple(p) for p in elements] == permutations(n, group in ("A4", "A5"))
    for x, y in zip(b.inputs.tolist(), b.targets.tolist()):
        state = np.arange(n)
        for t, g in enumerate(x):
            state = compose(state, elements[g])
            assert (elements[y[t]] == state).all()


def test_word_problem_cyclic_and_bad_order():
    _, b = rows("word_problem", 12, group="cyclic", order=7)
    assert torch.equal(b.targets, b.inputs.cumsum(1) % 7) and b.mask.all()
    from archbench import registry
    with pytest.raises(ValueError, match="order 7 applies to group 'cyclic' only"):
        registry.tasks.validate("word_problem", {"group": "A5", "order": 7})


def blind_scores(task, n=6000):
    """Loss and accuracy of the best input-blind predictor, per position: the targets' own distribution
    (loss, over the loss positions) and their likeliest value among the scored rows (accuracy)."""
    b = task.sample(n, torch.Generator().manual_seed(321))
    T, V = b.targets.shape[1], task.vocab_size
    counts = torch.stack([torch.bincount(b.targets[b.mask[:, t], t], minlength=V).float() for t in range(T)])
    p = counts / counts.sum(1, keepdim=True).clamp_min(1)
    pos = torch.arange(T).expand(n, -1)
    loss = float(-(p[pos[b.mask], b.targets[b.mask]].log()).mean())
    # the guess that scores best where accuracy is read: the likeliest target among the scored rows
    scored = torch.stack([torch.bincount(b.targets[b.scored[:, t], t], minlength=V) for t in range(T)])
    hits = (scored.argmax(1)[pos[b.scored]] == b.targets[b.scored]).float().mean()
    return loss, float(hits)


@pytest.mark.parametrize("kind", CLASSIFY + TRANSDUCE)
@pytest.mark.parametrize("n", [1, 3, 10])
def test_baseline_is_the_blind_predictors_score(kind, n):
    task = build_task(kind, n, True)
    loss, acc = blind_scores(task)
    base = task.baseline()
    assert base.loss == pytest.approx(loss, abs=0.03)
    assert base.accuracy == pytest.approx(acc, abs=0.03)


@pytest.mark.parametrize("group", ["cyclic", "S3"])
def test_word_problem_baseline(group):
    task = build_task("word_problem", 6, True, group=group)
    loss, acc = blind_scores(task)
    assert task.baseline().loss == pytest.approx(loss, abs=0.03)
    assert task.baseline().accuracy == pytest.approx(acc, abs=0.03)
    assert task.baseline().loss == pytest.approx(math.log(task.vocab_size))
