"""Length generalisation for any task: train on a range of lengths, test on longer ones.

    task:
      kind: parity_check
      train_lengths: [1, 20]        # each training batch draws its length uniformly from 1 .. 20
      test_lengths: [40, 60, 80]    # held-out sets at each length (archbench.instruments.lengths)

Two task parameters that every task takes (they are not its constructor's): ``build_task`` here (also
``archbench.tasks.build_task``) builds the task once per length and wraps it in ``LengthVaried``. The point's ``seq_len`` must lie in the training
range (the other metrics use it). The lengths are the task's own ``seq_len`` (for Delétang's tasks the
input length, archbench.tasks.formal). A list of two ints is one value of ``train_lengths`` and a list
of ints one value of ``test_lengths``; a list of such lists is swept.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from archbench.errors import BadInput
from archbench.tasks import base
from archbench.tasks.base import Baseline, Batch, Task

LENGTH_PARAMS = ("train_lengths", "test_lengths")


@dataclass(frozen=True)
class Lengths:
    train: tuple[int, int]      # lo, hi: the training range, both included
    test: tuple[int, ...] = ()  # the held-out lengths, ascending

    @property
    def training(self) -> range:
        return range(self.train[0], self.train[1] + 1)

    @property
    def beyond(self) -> tuple[int, ...]:
        """The test lengths above the training range: what ``ood_accuracy`` averages."""
        return tuple(n for n in self.test if n > self.train[1])

    def params(self) -> dict[str, tuple[int, ...]]:
        """As a point holds them: tuples (a point is hashed), written to JSON as lists."""
        out: dict[str, tuple[int, ...]] = {"train_lengths": self.train}
        if self.test:
            out["test_lengths"] = self.test
        return out


def _ints(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def split_lengths(params: dict[str, Any]) -> tuple[Lengths | None, dict[str, Any]]:
    """(the length protocol or None, the task's own parameters); ValueError naming a bad value."""
    rest = {k: v for k, v in params.items() if k not in LENGTH_PARAMS}
    train, test = params.get("train_lengths"), params.get("test_lengths")
    if train is None:
        if test is not None:
            raise ValueError("test_lengths needs train_lengths: [lo, hi], the range the model is trained on")
        return None, rest
    if not _ints(train) or len(train) != 2 or not 1 <= train[0] <= train[1]:
        raise ValueError(f"train_lengths: {train!r} is not [lo, hi] with 1 <= lo <= hi")
    if test is not None and (not _ints(test) or not test or min(test) < 1 or len(set(test)) != len(test)):
        raise ValueError(f"test_lengths: {test!r} is not a list of distinct lengths >= 1")
    return Lengths((train[0], train[1]), tuple(sorted(test or ()))), rest


def build_task(kind: str, seq_len: int, causal: bool = True, framing: str | None = None, **params: object) -> Task:
    """archbench.tasks.base.build_task, with the length protocol: given ``train_lengths`` (and ``test_lengths``),
    the task at every length, wrapped in ``LengthVaried``."""
    try:
        lengths, own = split_lengths(params)
    except ValueError as exc:
        raise BadInput(f"task {kind!r}: {exc}") from None
    task = base.build_task(kind, seq_len, causal, framing, **own)
    if lengths is None:
        return task
    return LengthVaried(task, lengths, lambda n: base.build_task(kind, n, causal, framing, **own))


def swept(name: str, value: Any) -> list[Any]:
    """The values of task parameter ``name`` a suite sweeps: a length parameter's list is one value."""
    if name in LENGTH_PARAMS and isinstance(value, list) and not any(isinstance(v, list) for v in value):
        return [value]
    return value if isinstance(value, list) else [value]


class LengthVaried(Task):
    """``task`` at every length of ``lengths``; ``sample`` draws one training length per batch."""

    def __init__(self, task: Task, lengths: Lengths, make: Callable[[int], Task]):
        self.inner, self.lengths, self.make = task, lengths, make
        self.seq_len, self.causal, self.framing = task.seq_len, task.causal, task.framing
        self.vocab_size = task.vocab_size
        vars(self).update(objective=task.objective, n_features=task.n_features)  # the inner task's (class variables)
        self._at: dict[int, Task] = {task.seq_len: task}
        self._baseline: Baseline | None = None

    def at(self, length: int) -> Task:
        """The task at ``length``, built once."""
        if length not in self._at:
            task = self.make(length)
            if task.vocab_size != self.vocab_size:
                raise ValueError(f"the task's vocabulary changes with its length ({self.vocab_size} at "
                                 f"{self.seq_len}, {task.vocab_size} at {length}); it cannot be length-varied")
            self._at[length] = task
        return self._at[length]

    def sample(self, batch: int, generator: torch.Generator) -> Batch:
        lo, hi = self.lengths.train
        length = lo + int(torch.randint(hi - lo + 1, (1,), generator=generator))
        return self.at(length).sample(batch, generator)

    def held_out(self, size: int, chunk: int, generator: torch.Generator) -> list[Batch]:
        """The in-distribution held-out set: every training length, size / lengths rows each (at least one)."""
        lengths = list(self.lengths.training)
        rows = max(1, -(-size // len(lengths)))
        sizes = [min(chunk, rows - i) for i in range(0, rows, chunk)]
        return [self.at(n).sample(k, generator) for n in lengths for k in sizes]

    def baseline(self) -> Baseline:
        """The blind guess averaged over the training lengths (each drawn equally often)."""
        if self._baseline is None:
            guesses = [self.at(n).baseline() for n in self.lengths.training]
            self._baseline = Baseline(loss=sum(g.loss for g in guesses) / len(guesses),
                                      accuracy=sum(g.accuracy for g in guesses) / len(guesses))
        return self._baseline

    def frame(self, question: torch.Tensor, answer: torch.Tensor, separator: int, placeholder: int) -> Batch:
        return self.inner.frame(question, answer, separator, placeholder)
