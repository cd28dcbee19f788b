"""``match_params``: size each architecture of an experiment to one parameter budget.

    match_params: 100000        # about this many parameters, each architecture
    match_params: transformer   # the parameter count of the experiment's architecture of this label

Each matched architecture gets the ``d_model`` whose parameter count (counted on the meta device,
no memory) is closest to the target, and must land within ``TOLERANCE`` (5 %) of it. Where the count
jumps between widths by more than that (a Transformer's ``d_model`` moves in steps of its ``heads``),
an architecture that declares a second width parameter (``Architecture.fine_width``) has it chosen
too, at the chosen ``d_model`` and its neighbours, to close the gap; otherwise the suite is refused in
one line naming the architecture and the nearest counts on either side. The architecture named by
label is the reference: its own width stays, and it is not resized. The chosen widths are part of
each point's parameters (so of its id); the count each point reached is its ``num_parameters`` row.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from pydantic import ValidationError

from archbench import registry
from archbench.architectures.base import declared
from archbench.errors import BadInput
from archbench.suite.point import Params
from archbench.suite.schema import Experiment

TOLERANCE = 0.05  # every matched architecture within 5 % of the target (LRA allows the base + 10 %)
MAX_WIDTH = 4096


def count(kind: str, params: Params, vocab: int, causal: bool) -> int:
    """The parameter count of ``kind`` built with ``params`` (validated, defaults filled), on the meta device."""
    factory = registry.architectures.get(kind)
    with torch.device("meta"):
        model = factory(vocab_size=vocab, causal=causal, **dict(params))
    return sum(p.numel() for p in model.parameters())


def _valid(kind: str, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return registry.architectures.validate(kind, params)
    except (ValidationError, ValueError):
        return None


@functools.lru_cache(maxsize=512)
def _nearest(kind: str, params: Params, name: str, target: int, vocab: int, causal: bool) -> list[tuple[int, int]]:
    """[(width, count)] of parameter ``name``: the widths just below and just above ``target`` parameters
    (one if the target is past either end), the rest of ``params`` as given. Bisection over the widths the
    architecture accepts (the count grows with the width)."""
    widths = [(w, v) for w in range(1, MAX_WIDTH + 1) if (v := _valid(kind, {**dict(params), name: w})) is not None]
    if not widths:
        return []
    at = functools.lru_cache(maxsize=None)(lambda k: count(kind, tuple(sorted(widths[k][1].items())), vocab, causal))
    lo, hi = 0, len(widths) - 1
    while lo < hi:  # the first width with at least ``target`` parameters
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if at(mid) < target else (lo, mid)
    return [(widths[k][0], at(k)) for k in sorted({max(lo - 1, 0), lo})]


def _closest(options: list[tuple[dict[str, Any], int]], target: int) -> tuple[dict[str, Any], int]:
    return min(options, key=lambda o: abs(o[1] - target))


def _fine(kind: str, own: dict[str, Any], d_options: list[tuple[int, int]], target: int, vocab: int,
          causal: bool) -> tuple[dict[str, Any], int] | None:
    """The closest (widths, count) with the architecture's second width parameter chosen too, at each
    nearby ``d_model``; None when it declares none."""
    fine = declared(registry.architectures.get(kind), "fine_width")
    if fine is None or fine in own:
        return None
    options = []
    for d, _ in d_options:
        at_d = tuple(sorted({**own, "d_model": d}.items()))
        options += [({"d_model": d, fine: w}, n) for w, n in _nearest(kind, at_d, fine, target, vocab, causal)]
    return _closest(options, target) if options else None


def target_of(exp: Experiment, own_params: dict[str, dict[str, Any]], vocab: int, causal: bool, where: str) -> int | None:
    """The experiment's target count: ``match_params`` itself, or the count of the architecture it names
    (built with ``own_params[label]``); None when nothing is matched."""
    target = exp.match_params
    if target is None or isinstance(target, int):
        return target
    kinds = {a.name: a.kind for a in exp.architectures}
    if target not in kinds:
        raise BadInput(f"{where}.match_params: {target!r} is not an architecture of this experiment; its "
                       f"architectures: {', '.join(kinds)} (or give a number of parameters)")
    reference = next(a for a in exp.architectures if a.name == target)
    if any(isinstance(v, list) for v in reference.params.values()):
        raise BadInput(f"{where}.match_params: {target!r} sweeps a parameter, so its count is not one target; "
                       "give it one value of each, or give a number of parameters")
    params = _valid(kinds[target], own_params[target])
    if params is None:
        return None  # its own parameters are bad: the reference's own validation says so
    return count(kinds[target], tuple(sorted(params.items())), vocab, causal)


def match(exp: Experiment, label: str, kind: str, own: dict[str, Any], target: int | None, vocab: int, causal: bool,
          where: str) -> dict[str, Any]:
    """``own`` with the width(s) that bring ``kind`` within ``TOLERANCE`` of ``target`` parameters; ``own``
    itself when nothing is matched or this is the reference architecture."""
    if target is None or label == exp.match_params:
        return own
    if "d_model" not in {p["name"] for p in registry.architectures.parameters(kind)}:
        raise BadInput(f"{where}: match_params sizes d_model, and {kind!r} has no d_model parameter")
    if "d_model" in own:
        raise BadInput(f"{where}.d_model: also sized by match_params {exp.match_params}; give one of the two")
    d_options = _nearest(kind, tuple(sorted(own.items())), "d_model", target, vocab, causal)
    if not d_options:
        raise BadInput(f"{where}: no d_model from 1 to {MAX_WIDTH} is valid for {kind!r} with its parameters")
    widths, n = _closest([({"d_model": d}, c) for d, c in d_options], target)
    if abs(n - target) > TOLERANCE * target:
        widths, n = _closest([(widths, n)] + ([f] if (f := _fine(kind, own, d_options, target, vocab, causal)) else []),
                             target)
    if abs(n - target) > TOLERANCE * target:
        nearest = ", ".join(f"{c:,} (d_model {d})" for d, c in d_options)
        raise BadInput(f"{where}: match_params {target:,} is out of reach within ±{TOLERANCE:.0%} for {label} "
                       f"({kind}); the nearest counts: {nearest}; change the target, {kind}'s other parameters, "
                       "or let it declare a second width (fine_width)")
    return {**own, **widths}
