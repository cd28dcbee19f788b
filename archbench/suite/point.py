"""A point: one measurement to make, frozen, with a stable id that hashes everything that changes
its numbers and nothing else.

    point = Point.from_dict(record["point"])     # as a results folder stores it
    point.id, point.describe()                   # 'a1b2c3d4e5f6', 'latency/lstm n=256 b=8 forward d_model=64'

torch-free: the results, the gate and the report read points without it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

Params = tuple[tuple[str, Any], ...]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Point:
    """One measurement to make. ``id`` hashes everything that changes the numbers, nothing else."""

    experiment: str
    arch: str               # the label (the kind unless the suite names it)
    arch_kind: str
    arch_params: Params     # every constructor parameter, defaults filled in
    task: str
    task_params: Params
    metrics: tuple[str, ...]
    seq_len: int
    batch: int
    pass_: str
    seed: int
    causal: bool
    device: str
    dtype: str
    threads: int
    training: Params = ()   # the accuracy metric's budget (archbench.instruments.training); empty for the others
    generation: Params = ()  # the generation metric's settings (schema.Generation); empty for the others
    implementation: Params = ()  # compile, attention_backend, amp, cuda_graphs away from defaults; empty: eager
    id: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", hashlib.sha256(canonical_json(self.key()).encode()).hexdigest()[:12])

    def key(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "id"}
        d["arch_params"], d["task_params"] = dict(self.arch_params), dict(self.task_params)
        d["metrics"] = list(self.metrics)
        d["pass"] = d.pop("pass_")
        d["training"] = dict(self.training)
        if not self.training:  # absent, as before training existed: the ids of other points stand
            del d["training"]
        d["generation"] = dict(self.generation)
        if not self.generation:
            del d["generation"]
        d["implementation"] = dict(self.implementation)
        if not self.implementation:  # eager: absent, so the ids of points before the axis stand
            del d["implementation"]
        return d

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.key()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Point:
        d = dict(d)
        d.pop("id", None)
        d["pass_"] = d.pop("pass")
        d["arch_params"] = tuple(sorted(d["arch_params"].items()))
        # a list (train_lengths) as the tuple the plan made: a point is hashed
        d["task_params"] = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d["task_params"].items()))
        d["training"] = tuple(sorted(d.get("training", {}).items()))
        d["generation"] = tuple(sorted(d.get("generation", {}).items()))
        d["implementation"] = tuple(sorted(d.get("implementation", {}).items()))
        d["metrics"] = tuple(d["metrics"])
        return cls(**d)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.arch_params)

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.arch_params if k == "d_model")
        extra += "".join(f" {k}={v}" for k, v in self.implementation)
        return f"{self.experiment}/{self.arch} n={self.seq_len} b={self.batch} {self.pass_} {extra}".strip()
