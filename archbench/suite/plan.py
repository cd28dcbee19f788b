"""Expand a suite into its points: frozen, ordered, each with a stable id.

    for point in archbench.expand(archbench.load_suite("suites/quick.yaml")):
        print(point.id, point.arch, point.seq_len, point.pass_)

The order is deterministic: experiments in file order; within one, the sweep (seq_len, batch,
shared parameters), then pass, seed and causal, and the architectures innermost, so that the
architectures of one shape sit side by side.

Beyond each parameter's own type and range, expanding asks the registered classes themselves:

- ``check_params(params)`` (architecture or task): rules across parameters (``heads`` divides
  ``d_model``); raise ValueError.
- ``check_shape(params, seq_len)`` (architecture or task): whether it can take a sequence of this
  length at all (a learned positional table of ``max_len`` rows); raise ValueError.
- ``tasks`` (metric, a tuple of task names): the tasks the metric applies to; absent, every task.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

import torch
from pydantic import ValidationError

from archbench import registry
from archbench.architectures.base import declared
from archbench.errors import BadInput
from archbench.suite import matching
from archbench.suite.messages import format_path, short_repr
from archbench.suite.point import Params, Point
from archbench.suite.schema import Component, Experiment, Generation, Suite, Training
from archbench.tasks import lengths
from archbench.tasks.lengths import build_task


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise BadInput("device 'cuda' requested but this machine has no CUDA device; allowed here: auto, cpu")
    return requested


def _grid(params: dict[str, list[Any]]) -> Iterable[dict[str, Any]]:
    keys = list(params)
    for values in itertools.product(*(params[k] for k in keys)):
        yield dict(zip(keys, values))


def _swept(component: Component, where: str) -> dict[str, list[Any]]:
    swept = {k: lengths.swept(k, v) for k, v in component.params.items()}  # lists sweep, a length range does not
    for key, values in swept.items():
        if not values:
            raise BadInput(f"{where}.{key}: the list is empty; give at least one value")
    return swept


def _at(prefix: str, *keys: Any) -> str:
    """``prefix.key``, or ``prefix['odd key']`` for a key that is not plain text (one line, always)."""
    return prefix + format_path(("_", *keys))[1:]


def _validated(
    reg: registry.Registry, comp: Component, params: dict[str, Any], origin: dict[str, str], where: str
) -> dict[str, Any]:
    """The component's full parameters, or BadInput naming the suite path of the bad one."""
    try:
        return reg.validate(comp.kind, params)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = origin.get(str(err["loc"][0]) if err["loc"] else "", _at(where, *err["loc"]))
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(p["name"] for p in reg.parameters(comp.kind)) or "none"
            raise BadInput(f"{path}: {comp.kind!r} has no parameter {err['loc'][0]!r}; its parameters: {allowed}") from None
        raise BadInput(f"{path}: {err['msg']}, got {short_repr(err.get('input'))}") from None
    except ValueError as exc:  # a ParameterError names its parameter: the path of the value (sweep or own)
        name = getattr(exc, "name", None)
        raise BadInput(f"{origin.get(name, _at(where, name)) if name else where}: {exc}") from None


def _check_shape(reg: registry.Registry, kind: str, params: dict[str, Any], seq_len: int, at: str, where: str) -> None:
    """The registered class's own ``check_shape(params, seq_len)``, where it has one."""
    check = getattr(reg.get(kind), "check_shape", None)
    if check is None:
        return
    try:
        check(params, seq_len)
    except ValueError as exc:
        raise BadInput(f"{at}.sweep.seq_len: {seq_len} does not fit {where} ({kind}): {exc}") from None


def _check_generation(kind: str, params: dict[str, Any], generation: Params, seq_len: int, at: str, where: str) -> None:
    """Generating reaches position prompt + tokens, and decoding at context seq_len position seq_len + 1:
    both must fit the architecture (its ``check_shape``), before a cache of that size is made."""
    check = getattr(registry.architectures.get(kind), "check_shape", None)
    settings = dict(generation)
    if check is None or not settings:
        return
    for length, what in ((settings["prompt"] + settings["tokens"], "prompt + tokens"), (seq_len + 1, "seq_len + 1")):
        try:
            check(params, length)
        except ValueError as exc:
            raise BadInput(f"{at}.generation: {what} = {length} positions do not fit {where} ({kind}): {exc}") from None


def _check_causal(causal: list[bool], kind: str, at: str, where: str) -> None:
    if False in causal and declared(registry.architectures.get(kind), "framing") == "encoder_decoder":
        raise BadInput(f"{at}.causal: false does not apply to {where} ({kind}): an encoder-decoder's decoder "
                       "generates left to right (its encoder sees the whole source whatever causal says); "
                       "allowed: true")


def _lengths(params: dict[str, Any], seq_len: int, where: str) -> tuple[lengths.Lengths | None, dict[str, Any]]:
    """The length protocol of a task's parameters (archbench.tasks.lengths) and the task's own parameters."""
    try:
        protocol, own = lengths.split_lengths(params)
    except ValueError as exc:
        raise BadInput(f"{where}.{exc}") from None
    if protocol is not None and not protocol.train[0] <= seq_len <= protocol.train[1]:
        raise BadInput(f"{where}.train_lengths: {list(protocol.train)} does not hold the sweep's seq_len {seq_len}; "
                       "the point's seq_len must be a training length")
    return protocol, own


def _check_metric_applies(metric: str, task: str, where: str) -> None:
    m = registry.metrics.get(metric)
    if not m.applies_to(task):
        raise BadInput(
            f"{where}: metric {metric!r} does not apply to task {task!r}; it applies to: {', '.join(m.tasks)}"
        )


def _trains(metrics: Iterable[str]) -> bool:
    return any(registry.metrics.get(m).trains for m in metrics)


def _trainings(exp: Experiment, at: str) -> list[dict[str, Any]]:
    """The training settings of each point: the suite's (or the defaults) when a metric trains."""
    if not _trains(exp.metrics):
        if exp.training is not None:
            raise BadInput(f"{at}.training: no metric of this experiment trains (accuracy does); remove it")
        return [{}]
    return (exp.training or Training()).grid()


def _implementations(exp: Experiment, at: str) -> list[dict[str, Any]]:
    """The implementation of each point (``{}``: eager); every metric must measure an implementation."""
    grid = exp.implementation.grid() if exp.implementation is not None else [{}]
    if grid != [{}]:
        for j, name in enumerate(exp.metrics):
            if not registry.metrics.get(name).implemented:
                allowed = ", ".join(e.name for e in registry.metrics if e.obj.implemented)
                raise BadInput(f"{at}.metrics[{j}]: {name!r} measures the model, not how it is run; with "
                               f"implementation: set, the metrics allowed are: {allowed}")
    return grid


def _generation(exp: Experiment, at: str) -> Params:
    """The generation settings of each point: the suite's (or the defaults) when a metric generates."""
    if not any(registry.metrics.get(m).generates for m in exp.metrics):
        if exp.generation is not None:
            raise BadInput(f"{at}.generation: no metric of this experiment generates (generation does); remove it")
        return ()
    return tuple(sorted((exp.generation or Generation()).model_dump().items()))


def _task_of(exp: Experiment, task_params: dict[str, Any], seq_len: int, causal: bool,
             at: str) -> tuple[dict[str, Any], int]:
    """The task's full parameters (its own validated, the length protocol's beside them) and its vocabulary;
    every length it will be posed at checked against it."""
    origin = {k: _at(f"{at}.task", k) for k in task_params}
    protocol, own = _lengths(task_params, seq_len, f"{at}.task")
    full = _validated(registry.tasks, exp.task, own, origin, f"{at}.task")
    for n in [seq_len] + ([] if protocol is None else [*protocol.training, *protocol.test]):
        _check_shape(registry.tasks, exp.task.kind, full, n, at, f"{at}.task")
    full.update({} if protocol is None else protocol.params())
    return full, build_task(exp.task.kind, seq_len, causal, **full).vocab_size


def _experiment_points(suite: Suite, i: int, exp: Experiment, device: str) -> list[Point]:
    at = f"experiments[{i}]"
    for j, name in enumerate(exp.metrics):
        if name not in registry.metrics:
            raise BadInput(f"{at}.metrics[{j}]: {registry.metrics.unknown_message(name)}")
    for j, arch in enumerate(exp.architectures):
        if arch.kind not in registry.architectures:
            raise BadInput(f"{at}.architectures[{j}]: {registry.architectures.unknown_message(arch.kind)}")
        _check_causal(exp.causal, arch.kind, at, f"{at}.architectures[{j}]")
        both = sorted(set(arch.params) & set(exp.sweep.shared()))
        if both:
            raise BadInput(
                f"{at}.architectures[{j}].{both[0]}: also set in {at}.sweep; set it in one place"
            )
    if exp.task.label is not None:
        raise BadInput(f"{at}.task.label: a task takes no label (got {exp.task.label!r}); name it by its kind")
    if exp.task.kind not in registry.tasks:
        raise BadInput(f"{at}.task: {registry.tasks.unknown_message(exp.task.kind)}")
    for j, name in enumerate(exp.metrics):
        _check_metric_applies(name, exp.task.kind, f"{at}.metrics[{j}]")

    shared = exp.sweep.shared()
    trainings = _trainings(exp, at)
    generation = _generation(exp, at)
    implementations = _implementations(exp, at)
    task_grid = _swept(exp.task, f"{at}.task")
    arch_grids = [_swept(arch, f"{at}.architectures[{j}]") for j, arch in enumerate(exp.architectures)]
    seeds = exp.seeds if exp.seeds is not None else suite.seeds
    points: list[Point] = []
    for (seq_len, batch), base in itertools.product(exp.sweep.shapes(), list(_grid(shared))):
        for pass_, seed, causal in itertools.product(exp.passes, seeds, exp.causal):
            for task_params in _grid(task_grid):
                task_full, vocab = _task_of(exp, task_params, seq_len, causal, at)
                widths = {a.name: {**base, **a.params} for a in exp.architectures}
                target = matching.target_of(exp, widths, vocab, causal, at)
                for training, impl, (j, arch) in itertools.product(trainings, implementations,
                                                                    enumerate(exp.architectures)):
                    for own in _grid(arch_grids[j]):
                        origin = {k: _at(f"{at}.sweep", k) for k in base}
                        origin.update({k: _at(f"{at}.architectures[{j}]", k) for k in own})
                        where = f"{at}.architectures[{j}]"
                        sized = matching.match(exp, arch.name, arch.kind, {**base, **own}, target, vocab, causal,
                                               where)
                        params = _validated(registry.architectures, arch, sized, origin, where)
                        _check_shape(registry.architectures, arch.kind, params, seq_len, at, where)
                        _check_generation(arch.kind, params, generation, seq_len, at, where)
                        points.append(
                            Point(
                                experiment=exp.name, arch=arch.name, arch_kind=arch.kind,
                                arch_params=tuple(sorted(params.items())),
                                task=exp.task.name, task_params=tuple(sorted(task_full.items())),
                                metrics=tuple(exp.metrics), seq_len=seq_len, batch=batch, pass_=pass_,
                                seed=seed, causal=causal, device=device, dtype=suite.dtype,
                                threads=suite.threads, training=tuple(sorted(training.items())),
                                generation=generation, implementation=tuple(sorted(impl.items())),
                            )
                        )
    return points


def _count(values: dict[str, Any]) -> int:
    return math.prod(len(v) if isinstance(v, list) else 1 for v in values.values())


def count_points(suite: Suite) -> int:
    """How many points ``expand`` gives, counted without making them (a product per experiment)."""
    total = 0
    for exp in suite.experiments:
        seeds = exp.seeds if exp.seeds is not None else suite.seeds
        shape = len(exp.sweep.shapes()) * _count(exp.sweep.shared())
        runs = len(exp.passes) * len(seeds) * len(exp.causal) * math.prod(
            len(lengths.swept(k, v)) for k, v in exp.task.params.items())
        runs *= len(exp.training.grid()) if exp.training is not None else 1
        runs *= len(exp.implementation.grid()) if exp.implementation is not None else 1
        total += shape * runs * sum(_count(arch.params) for arch in exp.architectures)
    return total


def expand(
    suite: Suite, source: str = "suite", device: str | None = None, max_points: int | None = None
) -> list[Point]:
    """Every point of the suite, in run order; BadInput on unknown names or bad parameters, and on
    more than ``max_points`` points (counted before any is made)."""
    if max_points is not None:
        n = count_points(suite)
        if n > max_points:
            raise BadInput(
                f"{source}: the suite expands to {n:,} points, more than the limit of {max_points:,}; "
                "pass --yes to go ahead, or make the sweep smaller"
            )
    if device is None:
        device = suite.device if suite.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    points: list[Point] = []
    seen: dict[str, Point] = {}
    names: set[str] = set()
    for i, exp in enumerate(suite.experiments):
        if exp.name in names:
            raise BadInput(f"{source}: experiments[{i}].name: duplicate experiment name {exp.name!r}; each needs its own")
        names.add(exp.name)
        try:
            expanded = _experiment_points(suite, i, exp, device)
        except BadInput as exc:
            raise BadInput(f"{source}: {exc}") from None
        for p in expanded:
            if p.id in seen:
                raise BadInput(
                    f"{source}: experiments[{i}]: point {p.describe()!r} appears twice; remove the repeated "
                    "value, or give two architectures of one kind distinct labels"
                )
            seen[p.id] = p
            points.append(p)
    return points


__all__ = ["Point", "count_points", "expand", "resolve_device"]
