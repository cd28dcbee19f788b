"""Matching a baseline's rows to a current run's: by point id, else by what describes the point.

Where ids differ (a changed architecture parameter, a new default), points are matched by the
fields that describe them: experiment, architecture label and kind, task and its parameters,
length, batch, pass, seed, causal, device, dtype and threads, first with and then without the
architecture's own parameters, a match only where it is one-to-one.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from archbench.results.load import Run
from archbench.results.values import plain

# What describes a point apart from its parameters; with the task's parameters, the fallback key.
DESCRIBING = ("experiment", "arch", "arch_kind", "task", "seq_len", "batch", "pass", "seed", "causal",
              "device", "dtype", "threads")


def _key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple:
    return tuple(plain(row.get(c)) for c in columns)


def label(row: Mapping[str, Any]) -> str:
    parts = [f"{row.get('experiment')}/{row.get('arch')}", f"n={plain(row.get('seq_len'))}",
             f"b={plain(row.get('batch'))}", str(row.get("pass"))]
    if plain(row.get("causal")) is False:
        parts.append("bidirectional")
    seed = plain(row.get("seed"))
    if seed not in (0, None):
        parts.append(f"seed={seed}")
    return " ".join(parts)


def _unique_match(base: list[dict], cur: list[dict], columns: Sequence[str]) -> list[tuple[dict, dict]]:
    """Pairs whose key is held by exactly one row on each side."""
    by_base: dict[tuple, list[dict]] = {}
    by_cur: dict[tuple, list[dict]] = {}
    for r in base:
        by_base.setdefault(_key(r, columns), []).append(r)
    for r in cur:
        by_cur.setdefault(_key(r, columns), []).append(r)
    return [(b[0], by_cur[k][0]) for k, b in by_base.items() if len(b) == 1 and len(by_cur.get(k, ())) == 1]


def match(base: Run, cur: Run) -> tuple[list[tuple[dict, dict, str]], list[dict], list[dict]]:
    """(pairs with how they were matched, baseline rows left over, current rows left over)."""
    brows = base.frame.to_dict("records")
    crows = cur.frame.to_dict("records")
    cur_by_id = {(r["point_id"], r["metric"]): r for r in crows}
    pairs: list[tuple[dict, dict, str]] = []
    used_b: set[int] = set()
    used_c: set[int] = set()
    for r in brows:
        other = cur_by_id.get((r["point_id"], r["metric"]))
        if other is not None:
            pairs.append((r, other, "id"))
            used_b.add(id(r))
            used_c.add(id(other))
    params = sorted({c for c in (*base.frame.columns, *cur.frame.columns) if str(c).startswith(("param.", "impl."))})
    describing = [c for c in DESCRIBING if c in base.frame.columns or c in cur.frame.columns]
    task_cols = sorted(base.task_columns & cur.task_columns)
    for how, columns in (("parameters", [*describing, *params, "metric"]),
                         ("description", [*describing, *task_cols, "metric"])):
        left_b = [r for r in brows if id(r) not in used_b]
        left_c = [r for r in crows if id(r) not in used_c]
        if not left_b or not left_c:
            break
        for b, c in _unique_match(left_b, left_c, columns):
            pairs.append((b, c, how))
            used_b.add(id(b))
            used_c.add(id(c))
    return pairs, [r for r in brows if id(r) not in used_b], [r for r in crows if id(r) not in used_c]
