"""Train a model on a task under a fixed budget and score it on held-out data.

    result = train(model, task, TrainingSettings(steps=300, lr=3e-3), seed=0, batch=32)
    result.accuracy, result.steps_to_threshold, result.converged, result.curve

AdamW with a linear warm-up and a cosine decay of the learning rate, gradient clipping after
``backward()``, a fresh batch each step from a generator seeded by ``seed``, and evaluation on a
test set drawn from a different seed (``seed + EVAL_SEED_OFFSET``), beside a validation set from a
third (archbench.instruments.validation). Every decision taken while training reads the validation
set; the test set gives the reported scores alone. Training stops at the step budget, at the time
budget, at the training-FLOPs budget (3 x the architecture's analytic forward FLOPs per step: forward,
and a backward of twice the forward), or as soon as the validation accuracy reaches the threshold.
``until="converged"`` trains at least ``steps``, then on until the threshold or a plateau of the
validation loss (archbench.results.convergence), at most ``max_steps``; ``until="steps"`` trains every
step of the budget, the threshold's step recorded but not obeyed. Every result says whether it
converged (on the validation curve) and records its curve against steps, seconds and training FLOPs:
the test set's loss and accuracy (``eval_loss``, ``eval_accuracy``) and the validation set's
(``val_loss``, ``val_accuracy``) at each evaluation. There is no best checkpoint: the scores are the
final model's.
A task in the encoder-decoder framing (a batch with a ``source``) trains with teacher forcing and is
scored by greedy decoding from the source (archbench.architectures.encoder_decoder.greedy_translate):
``accuracy`` is then the decoded tokens' accuracy, and ``exact_accuracy`` the share of answers decoded
whole, which is what the threshold is held to (on validation); the held-out losses stay teacher-forced.
Every random draw (data, initialisation of the feature layers, dropout) comes from ``seed``:
the same seed on the same device gives the same numbers (on CPU, bit for bit). A time budget
makes the step count depend on the machine.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archbench.errors import Diverged
from archbench.instruments.passes import loss_fn, scored_targets
from archbench.instruments.validation import drawn_set, validation_set
from archbench.results.convergence import converged, plateaued
from archbench.tasks.base import Batch, Task

EVAL_SEED_OFFSET = 1_000_003  # the held-out set's seed: seed + this, never a training seed
EVAL_CHUNK = 64               # the held-out set is scored in chunks of max(batch, this)
BACKWARD_FACTOR = 3           # training FLOPs per step: the forward, and a backward of about twice it
# the curve, at each evaluation: the test set's loss and accuracy (eval_*), then the validation set's (val_*)
CURVE = ("step", "train_loss", "eval_loss", "eval_accuracy", "time", "flops", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrainingSettings:
    steps: int = 300                 # the step budget
    lr: float = 3e-3                 # peak learning rate
    warmup: float = 0.1              # fraction of the steps spent warming up, linearly from 0
    weight_decay: float = 0.01
    clip: float = 1.0                # gradient norm, clipped after backward()
    time_budget: float | None = None  # s of training; None: the step budget alone
    eval_every: int = 50
    eval_size: int = 512             # held-out sequences
    threshold: float = 0.99          # validation accuracy that ends training early
    until: str = "budget"            # "converged": past `steps`, on to the threshold or a plateau; "steps": all
    max_steps: int | None = None     # the ceiling of until="converged"
    flops_budget: float | None = None  # training FLOPs (3 x forward per step); None: no FLOPs budget

    @classmethod
    def of(cls, values: dict[str, Any]) -> TrainingSettings:
        return cls(**values)

    @property
    def step_limit(self) -> int:
        """The most steps this budget allows, before any time or FLOPs budget."""
        return self.max_steps if self.until == "converged" and self.max_steps is not None else self.steps

    def lr_at(self, step: int, horizon: int | None = None) -> float:
        """Linear warm-up to ``lr`` over ``warmup`` of the ``horizon`` (default: the step limit), then
        cosine decay to a tenth of it at the horizon. ``until="converged"`` thus follows the schedule
        of a budget of ``max_steps``, stopped where it converges."""
        horizon = self.step_limit if horizon is None else horizon
        warm = max(1, round(self.warmup * horizon))
        if step < warm:
            return self.lr * (step + 1) / warm
        progress = (step - warm) / max(1, horizon - warm)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@dataclass
class TrainingResult:
    accuracy: float
    loss: float
    steps: int
    steps_to_threshold: int | None
    train_time: float
    curve: dict[str, list[float]] = field(default_factory=dict)
    attention_entropy: float | None = None
    converged: bool = False                  # the threshold reached, or a plateau, on validation (results.convergence)
    time_to_threshold: float | None = None   # s of training (evaluations included) to the threshold
    flops_per_step: int | None = None        # training FLOPs of one step; None: no analytic count
    train_flops: float | None = None
    flops_to_threshold: float | None = None
    exact_accuracy: float | None = None      # answers decoded whole (encoder-decoder framing); None otherwise
    val_accuracy: float | None = None        # the final model's accuracy on the validation set


def read_features(model: nn.Module, task: Task) -> nn.Module:
    """For a task with continuous inputs (``n_features``) or a regression objective: a linear input
    layer in place of the token embedding and a one-output head, on the same backbone.

    The built-ins and any architecture with ``embed`` and ``head`` layers take this; others
    cannot run such a task, which is an error naming the architecture.
    """
    if task.n_features == 0 and task.objective == "classification":
        return model
    embed, head = getattr(model, "embed", None), getattr(model, "head", None)
    if not isinstance(embed, nn.Embedding) or not isinstance(head, nn.Linear):
        raise ValueError(
            f"{type(model).__name__} has no `embed` (nn.Embedding) and `head` (nn.Linear) layers to swap "
            f"for the continuous inputs and output of task {type(task).__name__}"
        )
    device, dtype = embed.weight.device, embed.weight.dtype
    if task.n_features:
        model.embed = nn.Linear(task.n_features, embed.embedding_dim).to(device, dtype)
    if task.objective == "regression":
        model.head = nn.Linear(head.in_features, 1).to(device, dtype)
    return model


def model_input(batch: Batch) -> torch.Tensor:
    return batch.arguments()[-1]  # the decoder's inputs of an encoder-decoder


def predictions(model: nn.Module, batch: Batch) -> torch.Tensor | None:
    """The greedily decoded answer (B, T) of an encoder-decoder batch; None for the other framings,
    which are scored on the forward's logits (teacher forcing)."""
    if batch.source is None:
        return None
    from archbench.architectures.encoder_decoder import greedy_translate  # late: tasks and passes need no models

    return greedy_translate(model, batch.source, batch.inputs[:, 0], batch.inputs.shape[1])


def objective_loss(task: Task, out: torch.Tensor, batch: Batch) -> torch.Tensor:
    if task.objective == "regression":
        return F.mse_loss(out[..., 0][batch.mask].float(), batch.targets[batch.mask].float())
    return loss_fn(out, scored_targets(batch))


def correct(task: Task, out: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(B, T) bool: whether the prediction at each position is right (read where ``scored``)."""
    if task.objective == "regression":
        return (out[..., 0] - batch.targets).abs() < getattr(task, "tolerance", 0.04)
    return out.argmax(-1) == batch.targets


def evaluate(model: nn.Module, task: Task, held_out: list[Batch]) -> tuple[float, float, float | None]:
    """(accuracy on the answer positions, mean loss on the loss positions, exact-answer accuracy of
    greedy decoding or None) over the held-out set."""
    model.eval()
    hits = total = whole = rows = 0
    loss_sum = loss_n = 0.0
    with torch.no_grad():
        for batch in held_out:
            out = model(*batch.arguments())
            scored = batch.scored
            decoded = predictions(model, batch)
            right = correct(task, out, batch) if decoded is None else decoded == batch.targets
            hits += int(right[scored].sum())
            total += int(scored.sum())
            whole += int((right | ~scored).all(1).sum())
            rows += right.shape[0]
            n = int(batch.mask.sum())
            loss_sum += float(objective_loss(task, out, batch)) * n
            loss_n += n
    model.train()
    exact = whole / max(rows, 1) if held_out and held_out[0].source is not None else None
    return hits / max(total, 1), loss_sum / max(loss_n, 1), exact


def held_out_set(task: Task, size: int, chunk: int, seed: int, device: torch.device) -> list[Batch]:
    """The test set of the point trained from ``seed``: the reported scores are read on it, and nothing else."""
    return drawn_set(task, size, chunk, torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET), device)


def train(model: nn.Module, task: Task, settings: TrainingSettings, seed: int, batch: int,
          device: torch.device | str = "cpu") -> TrainingResult:
    """Train ``model`` in place on ``task`` and return its held-out scores and training curve."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)  # feature layers and dropout: from the seed, not the caller's RNG
        model = read_features(model, task)
        return _train(model, task, settings, seed, batch, device)


def training_flops_per_step(model: nn.Module, batch: int, seq_len: int, target_len: int | None = None) -> int | None:
    """3 x the architecture's analytic forward FLOPs at this shape (an encoder-decoder's: source
    ``seq_len``, target ``target_len``); None when it declares no count."""
    flops = getattr(model, "flops", None)
    shape = (batch, seq_len) if target_len is None else (batch, seq_len, target_len)
    try:
        return BACKWARD_FACTOR * int(flops(*shape)) if callable(flops) else None
    except (NotImplementedError, TypeError):
        return None


def _train(model: nn.Module, task: Task, s: TrainingSettings, seed: int, batch: int,
           device: torch.device) -> TrainingResult:
    generator = torch.Generator().manual_seed(seed)
    held_out = held_out_set(task, s.eval_size, max(batch, EVAL_CHUNK), seed, device)
    validation = validation_set(task, s.eval_size, max(batch, EVAL_CHUNK), seed, device)  # every decision reads it
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    curve: dict[str, list[float]] = {key: [] for key in CURVE}
    first = held_out[0]
    per_step = (training_flops_per_step(model, batch, int(model_input(first).shape[1])) if first.source is None else
                training_flops_per_step(model, batch, int(first.source.shape[1]), int(first.inputs.shape[1])))
    limit = _step_limit(s, per_step, model)
    reached: int | None = None
    reached_time: float | None = None
    plateau = False
    running, since = 0.0, 0
    model.train()
    start = time.perf_counter()
    step = 0
    while step < limit:
        for group in optimizer.param_groups:
            group["lr"] = s.lr_at(step, limit)
        data = task.sample(batch, generator).to(device)
        loss = objective_loss(task, model(*data.arguments()), data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.clip)  # after backward, before the step
        optimizer.step()
        value = loss.item()
        if not math.isfinite(value):
            raise Diverged(f"the training loss is {value} at step {step + 1}")
        running, since, step = running + value, since + 1, step + 1
        out_of_time = s.time_budget is not None and time.perf_counter() - start >= s.time_budget
        if step % s.eval_every == 0 or step == limit or out_of_time:
            score = _evaluate_into(curve, model, task, (held_out, validation), step, running / since,
                                   time.perf_counter() - start, per_step)
            running, since = 0.0, 0
            if score >= s.threshold and reached is None:  # on validation; answers whole, where decoded
                reached, reached_time = step, curve["time"][-1]
                if s.until != "steps":  # until="steps": a fixed budget, trained on past the threshold
                    break
            if s.until == "converged" and step >= s.steps and plateaued(curve["val_loss"]):
                plateau = True
                break
        if out_of_time:
            break
    train_time = time.perf_counter() - start
    if per_step is None:
        del curve["flops"]
    flops = None if per_step is None else float(step * per_step)
    return TrainingResult(  # the reported scores: the test set's at the last evaluation (the loop ends on one)
        curve["eval_accuracy"][-1], curve["eval_loss"][-1], step, reached, train_time, curve,
        _attention_entropy(model, held_out), converged=plateau or converged(curve["val_loss"], reached is not None),
        time_to_threshold=reached_time, flops_per_step=per_step, train_flops=flops,
        flops_to_threshold=None if reached is None or per_step is None else float(reached * per_step),
        exact_accuracy=curve["eval_exact_accuracy"][-1] if "eval_exact_accuracy" in curve else None,
        val_accuracy=curve["val_accuracy"][-1],
    )


def _step_limit(s: TrainingSettings, per_step: int | None, model: nn.Module) -> int:
    """The steps the budget allows: the step limit, or fewer under a FLOPs budget (at least one)."""
    if s.flops_budget is None:
        return s.step_limit
    if per_step is None:
        raise ValueError(f"flops_budget needs an analytic FLOP count, and {type(model).__name__} defines no "
                         "flops(batch, seq_len)")
    return min(s.step_limit, max(1, int(s.flops_budget // per_step)))


def _evaluate_into(curve: dict[str, list[float]], model: nn.Module, task: Task,
                   sets: tuple[list[Batch], list[Batch]], step: int, train_loss: float, seconds: float,
                   per_step: int | None) -> float:
    """Score the test and the validation set and append a point to the curve; the validation score the
    threshold is held to (its exact accuracy where decoded, else its accuracy): the test scores decide nothing."""
    test, validation = (evaluate(model, task, held) for held in sets)
    for key, v in (("step", step), ("train_loss", train_loss), ("eval_loss", test[1]), ("eval_accuracy", test[0]),
                   ("time", seconds), ("flops", step * per_step if per_step is not None else math.nan),
                   ("val_loss", validation[1]), ("val_accuracy", validation[0])):
        curve[key].append(v)
    for prefix, (_, _, exact) in (("eval", test), ("val", validation)):
        if exact is not None:
            curve.setdefault(f"{prefix}_exact_accuracy", []).append(exact)
    return validation[0] if validation[2] is None else validation[2]


def _attention_entropy(model: nn.Module, held_out: list[Batch]) -> float | None:
    """Mean entropy of the attention weights on the first held-out batch, for a model that reports it."""
    attention_entropy = getattr(model, "attention_entropy", None)
    if callable(attention_entropy) and held_out[0].source is None:
        return float(attention_entropy(model_input(held_out[0])))
    return None
