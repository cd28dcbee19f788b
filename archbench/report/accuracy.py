"""The report's accuracy section: per trained experiment, mean held-out accuracy over seeds with its
95 % interval beside the blind guess, whether each configuration converged, and its figures (accuracy
bars, training curves, accuracy against compute and time)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from archbench.report import fairness, plots
from archbench.report.section import ReportData, Section, literal, table, where
from archbench.results.convergence import still_improving_line
from archbench.results.selection import chosen

METRICS = ("accuracy", "loss", "baseline_accuracy", "baseline_loss", "steps_to_threshold", "time_to_threshold",
           "flops_to_threshold", "train_steps", "train_time", "train_flops", "attention_entropy", "converged")


def section(data: ReportData) -> Section | None:
    accuracy = data.accuracy
    trained = list(dict.fromkeys(accuracy.experiment)) if not accuracy.empty else []
    if not trained:
        return None
    figs = [f for e in trained for f in (plots.accuracy_bars(accuracy, e, data.colour, data.folder),
                                         plots.training_curves(data.df, data.artifacts, e, data.colour, data.folder),
                                         plots.compute_curves(data.df, data.artifacts, e, data.colour, data.folder)) if f]
    return Section("Accuracy on synthetic tasks", tables(accuracy), figs, METRICS)


def still_improving(row: pd.Series, cols: Sequence[str] = ()) -> str:
    """"transformer (…) was still improving at step 600: the budget decides this number (2 of 3 seeds)" for
    a configuration not every seed of which converged; "" otherwise (or for results from before the flag)."""
    flag = row.get("converged")
    if pd.isna(flag) or bool(flag):
        return ""
    seeds = f" ({row.n_seeds - row.converged_seeds:.0f} of {row.n_seeds:.0f} seeds)" if row.n_seeds > 1 else ""
    return still_improving_line(f"{row.arch}{where(row, list(cols))}", int(row.unconverged_at)) + seeds


def unconverged(row: pd.Series) -> str:
    line = still_improving(row)
    return f" ({line.removeprefix(str(row.arch) + ' ')})" if line else ""


def tables(accuracy: pd.DataFrame) -> list[str]:
    """Per experiment: mean accuracy over seeds with its 95 % interval, beside the blind guess."""
    md = ["Held-out accuracy on the answer positions after training under the suite's budget, mean over "
          "seeds with the 95 % t-interval; *guess* is the best input-blind prediction. Where several "
          "learning rates (or weight decays) were tried, each architecture is shown at the values chosen on "
          "a validation split (marked `selected` in accuracy.csv), its accuracy reported on the test set. "
          "*converged*: the seeds that reached the threshold or whose held-out loss had stopped improving "
          "(archbench.results.convergence); a number that did not converge is the budget's verdict, not the "
          "architecture's. *steps*, *steps to threshold* and *s to threshold*: means over the seeds "
          "(to threshold: over those that reached it).", ""]
    for experiment, t in accuracy.groupby("experiment", sort=False):
        fair = fairness.flag_lines(t)  # LRA's rule, beside the table: every grid point's rows
        t = chosen(t)
        cols = plots.varying(t)
        view = t[["arch"] + cols].rename(columns=lambda c: c.removeprefix("param.").removeprefix("train."))
        view["accuracy (95 % CI)"] = [
            f"{a:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(a) else "failed"
            for a, lo, hi in zip(t.accuracy, t.accuracy_ci_low, t.accuracy_ci_high)]
        view["guess"] = t.baseline_accuracy.round(3).values
        view["loss"] = t.loss.round(4).values
        view["guess loss"] = t.baseline_loss.round(4).values
        view["seeds"] = t.n_seeds.values
        view["reached threshold"] = [f"{r}/{n}" for r, n in zip(t.reached_threshold, t.n_seeds)]
        if "converged" in t:
            view["converged"] = [f"{c:.0f}/{n}" if pd.notna(f) else "" for c, f, n in
                                 zip(t.converged_seeds, t.converged, t.n_seeds)]
            whole = lambda values: [f"{v:.0f}" if pd.notna(v) else "" for v in values]  # noqa: E731
            view["steps"] = whole(t.train_steps)
            view["steps to threshold"] = whole(t.steps_to_threshold)
            view["s to threshold"] = t.time_to_threshold.round(1).values
        if t.attention_entropy.notna().any():
            view["attention entropy (nats)"] = t.attention_entropy.round(3).values
        md += [f"**{literal(experiment)}** (task {literal(t.task.iloc[0])})", "", table(view), ""] + fair
        flagged = [f"- {literal(still_improving(r, cols))}." for _, r in t.iterrows() if still_improving(r)]
        md += flagged + [""] if flagged else []
    return md
