"""``accuracy``: train the architecture on the point's task under the suite's budget, then score it.

    - name: copy
      architectures: [lstm, tcn, transformer]
      task: {kind: copy_memory, symbols: 10}
      metrics: [accuracy]
      training: {steps: 400, lr: [1e-3, 3e-3]}   # a list of learning rates is swept
      sweep: {seq_len: [40, 120], batch: 32, d_model: 32}

Rows: ``accuracy`` (held-out, answer positions only), ``loss`` (held-out), the task's blind-guess
``baseline_accuracy`` and ``baseline_loss`` beside them; in the encoder-decoder framing ``accuracy``
is the token accuracy of greedy decoding, with ``exact_accuracy`` (answers decoded whole) and its
blind guess ``baseline_exact_accuracy`` beside it (docs/seq2seq.md); ``converged`` (1.0 when the threshold was
reached or the validation loss had stopped improving, 0.0 when it was still improving as the budget
ran out: archbench.results.convergence), ``steps_to_threshold``, ``time_to_threshold`` and
``flops_to_threshold`` (only when the threshold was reached), ``train_steps``, ``train_time``,
``train_flops`` (3 x the analytic forward FLOPs per step, where the architecture counts them), and
``attention_entropy`` (mean entropy of the attention weights, nats) for an architecture that
reports it. With ``train_lengths`` and ``test_lengths`` (archbench.tasks.lengths): one ``length_accuracy``
row per test length (the length in the ``test_length`` column), ``ood_accuracy``, their mean over the
lengths beyond the training range, and ``baseline_ood_accuracy``, the blind guess's mean over them;
``accuracy`` stays the held-out accuracy at the training lengths, and convergence is judged on the
validation split at the same lengths. The training curve (the test and validation sets' loss and
accuracy against step, seconds and training FLOPs) is saved for the report. A NaN or infinite training loss ends the point as ``diverged``.
Beside them: ``val_accuracy``, the same score on a validation split drawn apart from the training data and
the test set (archbench.instruments.validation), which every decision of training reads (the stop at the
threshold, the plateau, ``converged``) and on which a grid of settings is chosen; ``accuracy``, ``loss`` and
``exact_accuracy`` alone are read on the test set; and the model's ``num_parameters`` and ``state_size``
(archbench.metrics.size).
"""
from __future__ import annotations

from archbench.instruments.lengths import accuracy_at_lengths, reachable
from archbench.instruments.training import TrainingSettings, train
from archbench.metrics.base import Context, Metric, Row
from archbench.metrics.size import SIZE_ROWS, size_rows
from archbench.registry import register_metric
from archbench.tasks.lengths import LengthVaried


@register_metric("accuracy")
class Accuracy(Metric):
    name, unit, higher_is_better = "accuracy", "fraction", True
    description = "held-out accuracy after training under the suite's budget, beside the blind-guess baseline"
    trains = True  # its points carry the experiment's `training:` settings

    ROWS = (("accuracy", "fraction", True), ("loss", "loss", False), ("baseline_accuracy", "fraction", True),
            ("baseline_loss", "loss", False), ("steps_to_threshold", "steps", False), ("train_time", "s", False),
            ("converged", "flag", True), ("time_to_threshold", "s", False), ("flops_to_threshold", "FLOP", False),
            ("train_steps", "steps", False), ("train_flops", "FLOP", False),
            ("exact_accuracy", "fraction", True), ("baseline_exact_accuracy", "fraction", True))

    # the validation split's accuracy, which a grid is chosen on (archbench.results.selection), and the sizes
    FAIRNESS_ROWS = (("val_accuracy", "fraction", True), *SIZE_ROWS)

    def produces(self) -> list[tuple[str, str, bool]]:
        return list(self.ROWS) + list(self.FAIRNESS_ROWS)

    def run(self, ctx: Context) -> list[Row]:
        p = ctx.point
        settings = TrainingSettings.of(dict(p.training))
        if isinstance(ctx.task, LengthVaried):
            reachable(p.arch, p.arch_kind, dict(p.arch_params), ctx.task)  # before training: a model that cannot read the test lengths is skipped
        result = train(ctx.model, ctx.task, settings, seed=p.seed, batch=p.batch, device=ctx.device)
        base = ctx.task.baseline()
        values = {"accuracy": result.accuracy, "loss": result.loss, "baseline_accuracy": base.accuracy,
                  "baseline_loss": base.loss, "train_time": result.train_time,
                  "steps_to_threshold": result.steps_to_threshold, "converged": float(result.converged),
                  "time_to_threshold": result.time_to_threshold, "flops_to_threshold": result.flops_to_threshold,
                  "train_steps": result.steps, "train_flops": result.train_flops,
                  "exact_accuracy": result.exact_accuracy,
                  "baseline_exact_accuracy": base.exact if result.exact_accuracy is not None else None}
        # *_to_threshold only when the threshold was reached: "never" is not a number of steps
        rows = [Row(name, float(values[name]), unit, hib) for name, unit, hib in self.ROWS if values[name] is not None]
        rows[0].stats = {"steps": result.steps, "threshold": settings.threshold, "converged": result.converged}
        rows[0].artifacts = {"curve": result.curve}
        if isinstance(ctx.task, LengthVaried):
            rows += length_rows(ctx, settings.eval_size, max(p.batch, 64))
        if result.attention_entropy is not None:
            rows.append(Row("attention_entropy", result.attention_entropy, "nats", False))
        rows += [Row("val_accuracy", float(result.val_accuracy), "fraction", True), *size_rows(ctx.model, p.seq_len)]
        return rows


def length_rows(ctx: Context, size: int, chunk: int) -> list[Row]:
    """``length_accuracy`` at each test length (``stats.test_length``), ``ood_accuracy``, their mean over the
    lengths beyond the training range (archbench.tasks.lengths), and ``baseline_ood_accuracy``, the blind
    guess's mean over the same lengths."""
    task = ctx.task
    assert isinstance(task, LengthVaried)
    scores = accuracy_at_lengths(ctx.model, task, ctx.point.seed, size, chunk, ctx.device)
    rows = [Row("length_accuracy", value, "fraction", True, stats={"test_length": n}) for n, value in scores.items()]
    beyond = [scores[n] for n in task.lengths.beyond]
    if beyond:
        guess = [task.at(n).baseline().accuracy for n in task.lengths.beyond]  # the blind guess at those lengths
        rows += [Row("ood_accuracy", sum(beyond) / len(beyond), "fraction", True),
                 Row("baseline_ood_accuracy", sum(guess) / len(guess), "fraction", True)]
    return rows
