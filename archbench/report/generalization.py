"""The report's length-generalisation section (archbench.tasks.lengths): accuracy against test length per
architecture with the training range shaded, the extended Delétang table (task x architecture,
``ood_accuracy`` and whether training converged), the fewest layers that reach a threshold at each
length (the word problem, Merrill et al.), and a verdict line."""
from __future__ import annotations

import pandas as pd

from archbench.report import length_plot
from archbench.report.section import ReportData, Section, table
from archbench.results.values import plain

METRICS = ("length_accuracy", "ood_accuracy", "baseline_ood_accuracy")
SOLVED = 0.9  # the accuracy taken as "solved" at a length (Merrill et al.'s threshold) and beyond the training range
DEPTH = ("param.layers", "param.levels")  # the depth parameter of the built-ins that have one


def scores(df: pd.DataFrame) -> pd.DataFrame:
    """One row per length-varied point: experiment, task (with its varying parameters), arch, seed,
    depth, the training range, accuracy in and beyond it, converged."""
    if "param.train_lengths" not in df or not df.metric.isin(METRICS).any():
        return pd.DataFrame()
    varied = df[df["param.train_lengths"].notna()]
    out = []
    for point, rows in varied.groupby("point_id", sort=False):
        first = rows.iloc[0]
        value = {m: rows.loc[(rows.metric == m) & (rows.status == "ok"), "value"] for m in
                 ("accuracy", "ood_accuracy", "converged", "baseline_accuracy", "baseline_ood_accuracy",
                  "train_steps")}
        depth = next((plain(first[c]) for c in DEPTH if c in rows and pd.notna(first[c])), None)
        out.append({"experiment": first.experiment, "task": task_label(first), "arch": first.arch,
                    "arch_kind": first.arch_kind, "seed": first.seed, "depth": depth, "point_id": point,
                    "train_lengths": first["param.train_lengths"],
                    "status": rows.loc[rows.metric == "accuracy", "status"].iloc[0] if (rows.metric == "accuracy").any()
                    else first.status,
                    **{m: float(v.iloc[0]) if len(v) else float("nan") for m, v in value.items()}})
    return pd.DataFrame(out)


def task_label(row: pd.Series) -> str:
    """``word_problem (A5)``: the task, with the group of a word problem."""
    group = row.get("param.group")
    if row.task == "word_problem" and isinstance(group, str):
        order = plain(row.get("param.order"))
        return f"word_problem ({'Z' + str(order) if group == 'cyclic' else group})"
    return str(row.task)


def delétang_table(s: pd.DataFrame) -> pd.DataFrame:
    """task x architecture: mean ood_accuracy over seeds (the deepest configuration of each), '*' where a
    seed did not converge in distribution, 'skipped' where the architecture cannot read the lengths."""
    cells: dict[tuple[str, str], str] = {}
    for (task, arch), g in s.groupby(["task", "arch"], sort=False):
        if g.depth.notna().any():
            g = g[g.depth == g.depth.max()]
        if g.status.ne("ok").all():
            cells[(task, arch)] = g.status.iloc[0]
            continue
        ok = g[g.status == "ok"]
        mark = "" if ok.converged.eq(1.0).all() else "*"
        cells[(task, arch)] = f"{ok.ood_accuracy.mean():.3f}{mark}" if ok.ood_accuracy.notna().any() else "-"
    tasks, archs = ordered_tasks(s), columns(s)
    view = pd.DataFrame([[cells.get((t, a), "") for a in archs] for t in tasks], columns=archs)
    view.insert(0, "task", tasks)
    guess = s.groupby("task", sort=False)[["baseline_accuracy", "baseline_ood_accuracy"]].mean().reindex(tasks)
    view["guess (in / beyond)"] = [f"{a:.3f} / {b:.3f}" for a, b in zip(guess.baseline_accuracy,
                                                                       guess.baseline_ood_accuracy)]
    return view


FAMILIES = ("lstm", "gru", "rnn", "tcn", "ssm", "transformer", "local_attention", "linear_attention")


TASKS = ("parity_check", "even_pairs", "cycle_navigation", "modular_arithmetic", "reverse_string", "stack_manipulation",
         "duplicate_string", "binary_addition", "bucket_sort", "word_problem")  # Delétang's order, then Merrill's


def ordered_tasks(s: pd.DataFrame) -> list[str]:
    """The task labels in the Chomsky hierarchy's order (Delétang et al.), then the word problem, then the rest."""
    rank = {t: i for i, t in enumerate(TASKS)}
    return sorted(dict.fromkeys(s.task), key=lambda t: rank.get(t.split(" ")[0], len(TASKS)))


def columns(s: pd.DataFrame) -> list[str]:
    """The architecture labels, recurrent first, then convolution, state space and the attention families
    (others last), each family's labels in the order the run met them."""
    kinds = dict(zip(s.arch, s.arch_kind))
    rank = {k: i for i, k in enumerate(FAMILIES)}
    return sorted(dict.fromkeys(s.arch), key=lambda a: rank.get(kinds[a], len(FAMILIES)))


def fewest_layers(df: pd.DataFrame, s: pd.DataFrame) -> pd.DataFrame:
    """(task, arch) x test length: the fewest layers whose mean length_accuracy reaches SOLVED; '>k' where
    none of the depths tried (up to k) does. For the experiments that sweep some architecture's depth."""
    swept = s[s.depth.notna()].groupby("experiment").apply(lambda g: g.groupby("arch").depth.nunique().max() > 1)
    s = s[s.experiment.isin(swept[swept].index) & s.depth.notna()] if len(swept) else s[:0]
    if s.empty:
        return pd.DataFrame()
    rows = df[(df.metric == "length_accuracy") & (df.status == "ok") & df.point_id.isin(s.point_id)]
    rows = rows[["point_id", "test_length", "value"]].merge(s[["point_id", "task", "arch", "depth"]], on="point_id")
    out = []
    for (task, arch), g in rows.groupby(["task", "arch"], sort=False):
        mean = g.groupby(["test_length", "depth"]).value.mean().reset_index()
        line = {"task": task, "arch": arch}
        for n, at in mean.groupby("test_length"):
            reach = at[at.value >= SOLVED].depth
            line[f"n={plain(n)}"] = f"{plain(reach.min())}" if len(reach) else f">{plain(at.depth.max())}"
        out.append(line)
    return pd.DataFrame(out)


def verdict(s: pd.DataFrame) -> str:
    """Which architectures generalise beyond the training length (at their best depth), on which tasks."""
    ok = s[(s.status == "ok") & s.ood_accuracy.notna()]
    per_depth = ok.groupby(["arch", "task", "depth"], sort=False, dropna=False).ood_accuracy.mean()
    best = per_depth.groupby(level=[0, 1], sort=False).max()  # the best configuration (depth) of each
    good = best[best >= SOLVED]
    if good.empty:
        return f"No architecture reaches {SOLVED} beyond its training length on any task."
    parts = [f"{arch} on {', '.join(good.loc[arch].index)}" for arch in dict.fromkeys(good.index.get_level_values(0))]
    never = [t for t in dict.fromkeys(ok.task) if t not in set(good.index.get_level_values(1))]
    tail = f"; none on {', '.join(never)}" if never else ""
    return f"Beyond the training length (ood_accuracy >= {SOLVED}): {'; '.join(parts)}{tail}."


def section(data: ReportData) -> Section | None:
    s = scores(data.df)
    if s.empty:
        return None
    line = verdict(s)
    figure = length_plot.accuracy_by_length(data.df, s, data.colour, data.folder, ordered_tasks(s))
    figs = [figure] if figure else []
    data.findings.append((line, figure))
    md = [f"**Verdict.** {line}", "",
          "Trained on the lengths `train_lengths`, scored on held-out sets at each of `test_lengths` (seeds "
          "apart from training); *ood_accuracy* is the mean over the test lengths beyond the training range, "
          "*accuracy* the held-out accuracy at the training lengths, on which convergence is judged. The table "
          "extends Delétang et al.'s (2023): mean ood_accuracy over seeds, `*` where training had not "
          "converged in distribution (the budget's number, not the architecture's); *guess* is the blind "
          "guess at the training lengths and beyond them.", "", table(delétang_table(s)), ""]
    layers = fewest_layers(data.df, s)
    if not layers.empty:
        md += [f"Fewest layers reaching {SOLVED} at each length (mean over seeds; `>k`: none of the depths "
               "tried, up to k):", "", table(layers), ""]
    return Section("Length generalisation", md, figs, METRICS)
