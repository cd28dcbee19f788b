"""The suite file's schema: pydantic models that refuse typos and bad values before anything runs.

A suite names experiments; each crosses architectures with a sweep of sequence lengths,
batch sizes and shared architecture parameters (``d_model``), passes and seeds::

    name: quick
    experiments:
      - name: latency
        architectures: [lstm, tcn, {kind: transformer, heads: 4}]
        metrics: [latency, peak_memory]
        passes: [forward, train_step]
        sweep: {seq_len: [64, 256], batch: 8, d_model: 64}

A value given as a list is swept; a scalar is one value. This module is the structure only: it
imports neither torch nor the registry, so the results, the gate and the report can read a suite's
``compare:`` rules with it. Names (architectures, tasks, metrics) are checked by expanding
(``archbench.suite.load``).
"""
from __future__ import annotations

import itertools
import os
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from archbench.stop_rule import StopRule

Pass = Literal["forward", "backward", "train_step", "encode", "decode"]
# Bounds that no machine reaches: a value beyond them is a typo, refused at the door with the range
CPUS = os.cpu_count() or 1
Threads = Annotated[int, Field(gt=0, le=CPUS)]  # this machine's CPUs
Count = Annotated[int, Field(gt=0, le=10**8)]  # training steps
Length = Annotated[int, Field(gt=0, le=2**24)]  # positions of one sequence
BATCH = 2**20
Batch = Annotated[int, Field(gt=0, le=BATCH)]
Tokens = Annotated[int, Field(gt=0, le=2**40)]
EvalSize = Annotated[int, Field(gt=0, le=10**6)]  # held-out sequences
DAY = 86_400.0
Seconds = Annotated[float, Field(ge=0, le=DAY, allow_inf_nan=False)]  # a stop rule's times, a point's timeout
PositiveSeconds = Annotated[float, Field(gt=0, le=DAY, allow_inf_nan=False)]
Budget = Annotated[float, Field(gt=0, le=30 * DAY, allow_inf_nan=False)]  # a training's time budget
Samples = Annotated[int, Field(gt=0, le=10**6)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # what every generator (torch's, numpy's) takes
MAX_PARAMETERS = 10**12  # match_params: a trillion weights
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
Name = Annotated[str, Field(pattern=NAME.pattern.replace("{0,99}", "*"), max_length=100)]


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class Strict(BaseModel):
    # strict: YAML's `yes` is not the integer 1, and "3" is not 3
    model_config = ConfigDict(extra="forbid", strict=True)


class Swept(BaseModel):
    """A mapping whose every value may be a list (swept) or a scalar (a list of one)."""

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: _as_list(v) for k, v in data.items()}
        return data


class Timing(Strict):
    """The stop rule of the timer (see archbench.stop_rule)."""

    min_samples: Samples = 10
    min_time: Seconds = 0.1
    max_time: PositiveSeconds = 2.0     # finite: it is what ends a noisy measurement
    target: Annotated[float, Field(gt=0, lt=1)] = 0.01
    warmup: Seconds = 0.05
    interleave: bool = True     # time the architectures of one shape in rounds, A B C A B C
    cold_cache: bool = False    # CUDA: clear L2 before each call, outside the timed interval
    clock: Literal["wall", "thread_cpu"] = "wall"  # CPU: wall time, or the CPU time of the timing thread

    def rule(self) -> StopRule:
        return StopRule(**self.model_dump(exclude={"interleave", "cold_cache", "clock"}))


class Training(Strict):
    """The training budget of the ``accuracy`` metric (see archbench.instruments.training.TrainingSettings).

    ``lr`` and ``weight_decay`` may be lists: each combination is a point of its own, scored on a
    validation split apart from the test split, and the accuracy table marks the combination chosen on
    validation per architecture (``selected``; ``best_lr`` the best lr at each weight decay), reported on
    test (a grid, as Zoology and MAD sweep; archbench.results.selection).

    ``until: converged`` trains at least ``steps``, then on until the threshold or a plateau of the
    held-out loss (archbench.results.convergence), at most ``max_steps``; ``until: steps`` trains all
    ``steps`` whatever the held-out accuracy (a fixed budget: reaching the threshold is still recorded); ``flops_budget`` caps the training
    FLOPs (3 x the architecture's analytic forward FLOPs per step), so architectures can be
    compared at equal compute.
    """

    steps: Count = 300
    lr: list[Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]] = Field(default=[3e-3], min_length=1)
    warmup: Annotated[float, Field(ge=0, lt=1)] = 0.1
    weight_decay: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default=[0.01], min_length=1)
    clip: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0  # the gradient norm clipped to
    time_budget: Budget | None = None
    eval_every: Count = 50
    eval_size: EvalSize = 512
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.99
    until: Literal["budget", "converged", "steps"] = "budget"  # steps: all of them, no early stop (Delétang et al.)
    max_steps: Count | None = None  # the ceiling of until: converged
    flops_budget: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    # Added after point ids were published: left out of a point's settings while at their defaults,
    # so that the ids of the points that do not set them stay as they were.
    ADDED: ClassVar[dict[str, Any]] = {"until": "budget", "max_steps": None, "flops_budget": None}

    _lr = field_validator("lr", "weight_decay", mode="before")(classmethod(lambda cls, v: _as_list(v)))
    # YAML's 1e12 without a dot is read as a number (see the loader); an int is a FLOP count too
    _flops = field_validator("flops_budget", mode="before")(
        classmethod(lambda cls, v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v))

    @model_validator(mode="after")
    def _until(self) -> Training:
        if self.until == "converged" and self.max_steps is None:
            raise ValueError("until: converged needs max_steps, the most steps to train (at least steps)")
        if self.max_steps is not None and self.until != "converged":
            raise ValueError("max_steps is the ceiling of until: converged; with until: budget, steps is the budget")
        if self.max_steps is not None and self.max_steps < self.steps:
            raise ValueError(f"max_steps {self.max_steps} is below steps {self.steps}; until: converged trains "
                             "at least steps, at most max_steps")
        return self

    def grid(self) -> list[dict[str, Any]]:
        """The settings of each point: one per learning rate and weight decay (lr varying fastest)."""
        rest = {k: v for k, v in self.model_dump(exclude={"lr", "weight_decay"}).items()
                if not (k in self.ADDED and v == self.ADDED[k])}
        return [{**rest, "weight_decay": wd, "lr": lr} for wd in self.weight_decay for lr in self.lr]


class Generation(Strict):
    """The settings of the ``generation`` metric (archbench.metrics.generation); the sweep's seq_len is
    the context c at which a token is decoded."""

    prompt: Length = 64             # P: the prompt of prefill_latency and generate_throughput
    tokens: Length = 32             # G: greedy tokens generated after it in generate_throughput
    cuda_graphs: bool = False       # CUDA: also time the decode step captured in a CUDA graph


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
AMP = ("none", "bf16", "fp16")


class Implementation(Strict, Swept):
    """How the model is run (archbench.instruments.implementation); each key may be a list, swept.

    ``compile``: false, true or a torch.compile mode (``max-autotune``); ``compile_backend`` the
    compiler behind it; ``attention_backend`` the SDPA kernel (``torch.nn.attention.sdpa_kernel``);
    ``amp`` autocast to bf16 or fp16 (fp16 training steps with a gradient scaler); ``cuda_graphs``
    the forward captured in a CUDA graph and replayed. A point's id includes only the keys set away
    from their defaults, so eager points keep the ids they had before this axis existed.
    """

    compile: list[bool | str] = [False]
    compile_backend: list[Literal["inductor", "aot_eager", "eager"]] = ["inductor"]
    attention_backend: list[Literal["auto", "math", "flash", "efficient", "cudnn"]] = ["auto"]
    amp: list[Literal["none", "bf16", "fp16"]] = ["none"]
    cuda_graphs: list[bool] = [False]
    DEFAULTS: ClassVar[dict[str, Any]] = {"compile": False, "compile_backend": "inductor",
                                          "attention_backend": "auto", "amp": "none", "cuda_graphs": False}

    @field_validator("compile")
    @classmethod
    def _compile(cls, values: list[bool | str]) -> list[bool | str]:
        for v in values:
            if not isinstance(v, bool) and v not in COMPILE_MODES:
                raise ValueError(f"compile {v!r} is not allowed; allowed: false, true, {', '.join(COMPILE_MODES)}")
        return values

    @model_validator(mode="after")
    def _non_empty(self) -> Implementation:
        for key in self.DEFAULTS:
            if not getattr(self, key):
                raise ValueError(f"{key} is empty; give at least one value")
        return self

    def grid(self) -> list[dict[str, Any]]:
        """The implementation of each point: the keys away from their defaults (eager: ``{}``)."""
        keys = list(self.DEFAULTS)
        out = []
        for values in itertools.product(*(getattr(self, k) for k in keys)):
            chosen = {k: v for k, v in zip(keys, values) if v != self.DEFAULTS[k]}
            if "compile" not in chosen:
                chosen.pop("compile_backend", None)  # the compiler of a model that is not compiled: no change
            if chosen not in out:
                out.append(chosen)
        return out


class Component(BaseModel):
    """A registered name and its parameters: ``tcn`` or ``{kind: tcn, label: cnn, dilation_base: 1}``.

    A parameter given as a list is swept.
    """

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: str
    label: Name | None = None
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"kind": data}
        if isinstance(data, dict):
            own = {k: data[k] for k in ("kind", "label") if k in data}
            return {**own, "params": {k: v for k, v in data.items() if k not in own}}
        return data

    @property
    def name(self) -> str:
        return self.label or self.kind


class Sweep(Swept):
    """Sequence lengths, batch sizes, and any parameter every architecture of the experiment takes."""

    model_config = ConfigDict(extra="allow", strict=True)
    seq_len: list[Length] = Field(min_length=1)
    batch: list[Batch] = Field(default=[1], min_length=1)
    # A fixed token budget instead of a batch: batch = tokens / seq_len, so batch x seq_len is constant.
    tokens: list[Tokens] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _non_empty(self) -> Sweep:
        for key, values in (self.model_extra or {}).items():
            if not values:
                raise ValueError(f"{key} is empty; give at least one value")
        if self.tokens is not None:
            if "batch" in self.model_fields_set:
                raise ValueError("give either batch or tokens (a fixed budget sets the batch), not both")
            for t in self.tokens:
                for n in self.seq_len:
                    if t % n:
                        raise ValueError(f"tokens {t} is not a multiple of seq_len {n}; batch = tokens / seq_len")
                    if t // n > BATCH:
                        raise ValueError(f"tokens {t} over seq_len {n} is a batch of {t // n}; allowed: a batch of "
                                         f"at most {BATCH} (give more seq_len or fewer tokens)")
        return self

    def shapes(self) -> list[tuple[int, int]]:
        """(seq_len, batch) pairs in plan order."""
        if self.tokens is None:
            return [(n, b) for n in self.seq_len for b in self.batch]
        return [(n, t // n) for n in self.seq_len for t in self.tokens]

    def shared(self) -> dict[str, list[Any]]:
        return dict(self.model_extra or {})


class Experiment(Strict):
    name: Name
    architectures: list[Component] = Field(min_length=1)
    task: Component = Component(kind="uniform")
    metrics: list[str] = Field(min_length=1)
    passes: list[Pass] = Field(default=["forward"], min_length=1)
    causal: list[bool] = Field(default=[True], min_length=1)
    seeds: list[Seed] | None = Field(default=None, min_length=1)
    training: Training | None = None  # the budget of the accuracy metric
    generation: Generation | None = None  # prompt, tokens and cuda_graphs of the generation metric
    implementation: Implementation | None = None  # compile, attention_backend, amp, cuda_graphs (swept)
    # size each architecture's d_model to this many parameters (±5 %), or to the count of the architecture
    # of this label (archbench.suite.matching)
    match_params: int | str | None = None

    @field_validator("match_params", mode="before")
    @classmethod
    def _match_params(cls, v: Any) -> Any:
        """A parameter count (1 to a trillion) or an architecture's label: one line either way (a union's
        own message names its branches)."""
        if v is None or isinstance(v, str) and NAME.fullmatch(v):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            if not 0 < v <= MAX_PARAMETERS:
                raise ValueError(f"Input should be greater than 0 and less than or equal to {MAX_PARAMETERS}, got {v}")
            return v
        raise ValueError(f"give a parameter count (1 to {MAX_PARAMETERS}) or the label of one of the experiment's "
                         f"architectures, got {v!r}")
    sweep: Sweep

    _lists = field_validator("architectures", "metrics", "passes", "causal", "seeds", mode="before")(
        classmethod(lambda cls, v: v if v is None else _as_list(v))
    )

    @field_validator("architectures")
    @classmethod
    def _unique_labels(cls, architectures: list[Component]) -> list[Component]:
        """Two architectures of one experiment under one label would be pooled into one fit, one row."""
        first: dict[str, int] = {}
        for i, a in enumerate(architectures):
            if a.name in first:
                raise ValueError(f"architectures[{first[a.name]}] and architectures[{i}] are both labelled "
                                 f"{a.name!r}; give each its own label (label: ...)")
            first[a.name] = i
        return architectures


RULE_FIELDS = ("threshold", "alpha", "floor")


class MetricRule(BaseModel):
    """One metric's entry under a suite's ``compare:`` (the regression gate, ``archbench.gate``);
    unset fields keep the gate's default for that metric."""

    model_config = ConfigDict(extra="forbid", strict=True)
    threshold: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = None
    floor: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in RULE_FIELDS:
                    raise ValueError(f"unknown key {key!r}; allowed: {', '.join(RULE_FIELDS)}")
        elif data is not None and not isinstance(data, MetricRule):
            raise ValueError(f"a metric's rule is a mapping of {', '.join(RULE_FIELDS)}, got {data!r}")
        return data

    def set_fields(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Suite(Strict):
    name: Name
    description: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    threads: Threads = 1
    tf32: bool = False              # TF32 matmul and cuDNN; off, so float32 means float32 everywhere
    cudnn_benchmark: bool = False
    seeds: list[Seed] = Field(default=[0], min_length=1)
    timing: Timing = Timing()
    timeout: PositiveSeconds | None = None  # s one point may take (all its metrics); over it: `timeout`
    experiments: list[Experiment] = Field(min_length=1)
    # metric name -> {threshold, alpha, floor}: the regression gate's rules (archbench.gate)
    compare: dict[str, MetricRule] = {}
    # where the points run (archbench.execute.executors); `archbench run --executor` wins over it
    executor: Literal["serial", "process", "ray"] | None = None
    # modules imported before the names are checked: their import registers architectures or tasks
    plugins: list[Annotated[str, Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")]] = []
    _text: str = PrivateAttr(default="")
    _path: str | None = PrivateAttr(default=None)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, v: Any) -> Any:
        return _as_list(v)

    @model_validator(mode="after")
    def _one_thread_for_thread_time(self) -> Suite:
        if self.timing.clock == "thread_cpu" and self.threads != 1:
            raise ValueError(f"timing.clock thread_cpu counts the CPU time of one thread; it needs threads: 1, "
                             f"got threads: {self.threads}")
        return self

    @property
    def text(self) -> str:
        """The suite file as written (the exact text is kept in results for provenance)."""
        return self._text

    @property
    def path(self) -> str | None:
        return self._path
