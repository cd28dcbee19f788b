"""The suite file: a pydantic model that refuses typos and bad values before anything runs.

    suite = archbench.load_suite("suites/quick.yaml")

A suite names experiments; each crosses architectures with a sweep of sequence lengths,
batch sizes and shared architecture parameters (``d_model``), passes and seeds::

    name: quick
    experiments:
      - name: latency
        architectures: [lstm, tcn, {kind: transformer, heads: 4}]
        metrics: [latency, peak_memory]
        passes: [forward, train_step]
        sweep: {seq_len: [64, 256], batch: 8, d_model: 64}

A value given as a list is swept; a scalar is one value. Errors name the path to the bad value.
YAML is read with the safe loader: a suite is data, it never names Python code to run.
"""
from __future__ import annotations

import re
import reprlib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from archbench.compare import MetricRule
from archbench.errors import BadInput
from archbench.timing import StopRule

Pass = Literal["forward", "backward", "train_step"]
PositiveInt = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
MAX_POINTS = 10_000  # more points than this in one suite needs --yes (max_points=None)
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


class Strict(BaseModel):
    # strict: YAML's `yes` is not the integer 1, and "3" is not 3
    model_config = ConfigDict(extra="forbid", strict=True)


class Timing(Strict):
    """The stop rule of the timer (see archbench.timing.StopRule)."""

    min_samples: PositiveInt = 10
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
    """The training budget of the ``accuracy`` metric (see archbench.training.TrainingSettings).

    ``lr`` may be a list: each learning rate is a point of its own, and the accuracy table reports
    the best per architecture (a learning-rate grid, as Zoology and MAD do).

    ``until: converged`` trains at least ``steps``, then on until the threshold or a plateau of the
    held-out loss (archbench.convergence), at most ``max_steps``; ``flops_budget`` caps the training
    FLOPs (3 x the architecture's analytic forward FLOPs per step), so architectures can be
    compared at equal compute.
    """

    steps: PositiveInt = 300
    lr: list[Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]] = Field(default=[3e-3], min_length=1)
    warmup: Annotated[float, Field(ge=0, lt=1)] = 0.1
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.01
    clip: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0  # the gradient norm clipped to
    time_budget: PositiveSeconds | None = None
    eval_every: PositiveInt = 50
    eval_size: PositiveInt = 512
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.99
    until: Literal["budget", "converged"] = "budget"
    max_steps: PositiveInt | None = None  # the ceiling of until: converged
    flops_budget: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    # Added after point ids were published: left out of a point's settings while at their defaults,
    # so that the ids of the points that do not set them stay as they were.
    ADDED: typing.ClassVar[dict[str, Any]] = {"until": "budget", "max_steps": None, "flops_budget": None}

    _lr = field_validator("lr", mode="before")(classmethod(lambda cls, v: _as_list(v)))
    # YAML's 1e12 without a dot is read as a number (see the loader); an int is a FLOP count too
    _flops = field_validator("flops_budget", mode="before")(
        classmethod(lambda cls, v: float(v) if isinstance(v, int) and not isinstance(v, bool) else v))

    @model_validator(mode="after")
    def _until(self) -> "Training":
        if self.until == "converged" and self.max_steps is None:
            raise ValueError("until: converged needs max_steps, the most steps to train (at least steps)")
        if self.max_steps is not None and self.until != "converged":
            raise ValueError("max_steps is the ceiling of until: converged; with until: budget, steps is the budget")
        if self.max_steps is not None and self.max_steps < self.steps:
            raise ValueError(f"max_steps {self.max_steps} is below steps {self.steps}; until: converged trains "
                             "at least steps, at most max_steps")
        return self

    def grid(self) -> list[dict[str, Any]]:
        """The settings of each point: one per learning rate."""
        rest = {k: v for k, v in self.model_dump(exclude={"lr"}).items()
                if not (k in self.ADDED and v == self.ADDED[k])}
        return [{**rest, "lr": lr} for lr in self.lr]


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


class Sweep(BaseModel):
    """Sequence lengths, batch sizes, and any parameter every architecture of the experiment takes."""

    model_config = ConfigDict(extra="allow", strict=True)
    seq_len: list[PositiveInt] = Field(min_length=1)
    batch: list[PositiveInt] = Field(default=[1], min_length=1)
    # A fixed token budget instead of a batch: batch = tokens / seq_len, so batch x seq_len is constant.
    tokens: list[PositiveInt] | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: _as_list(v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _non_empty(self) -> "Sweep":
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
    seeds: list[int] | None = Field(default=None, min_length=1)
    training: Training | None = None  # the budget of the accuracy metric
    match_params: PositiveInt | None = None  # size each architecture's d_model to about this many parameters
    sweep: Sweep

    _lists = field_validator("architectures", "metrics", "passes", "causal", "seeds", mode="before")(
        classmethod(lambda cls, v: v if v is None else _as_list(v))
    )


class Suite(Strict):
    name: Name
    description: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    threads: PositiveInt = 1
    tf32: bool = False              # TF32 matmul and cuDNN; off, so float32 means float32 everywhere
    cudnn_benchmark: bool = False
    seeds: list[int] = Field(default=[0], min_length=1)
    timing: Timing = Timing()
    timeout: PositiveSeconds | None = None  # s one point may take (all its metrics); over it: `timeout`
    experiments: list[Experiment] = Field(min_length=1)
    # metric name -> {threshold, alpha, floor}: the regression gate's rules (archbench.compare)
    compare: dict[str, MetricRule] = {}
    # where the points run (archbench.executors); `archbench run --executor` wins over it
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
    def _one_thread_for_thread_time(self) -> "Suite":
        if self.timing.clock == "thread_cpu" and self.threads != 1:
            raise ValueError(f"timing.clock thread_cpu counts the CPU time of one thread; it needs threads: 1, "
                             f"got threads: {self.threads}")
        return self

    @field_validator("compare")
    @classmethod
    def _compare_metrics(cls, v: dict[str, MetricRule]) -> dict[str, MetricRule]:
        from archbench.compare import known_metrics, unknown_metric_message

        known = known_metrics()
        for name in v:
            if name not in known:
                raise ValueError(unknown_metric_message(name, known))
        return v

    @property
    def text(self) -> str:
        """The suite file as written (the exact text is kept in results for provenance)."""
        return self._text

    @property
    def path(self) -> str | None:
        return self._path


def _allowed_keys(loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model that ``loc`` points into, for an "unknown key" message."""
    model: Any = Suite
    for part in loc[:-1]:
        if isinstance(part, int):
            args = [a for a in get_args(model) if a is not type(None)]
            model = args[0] if args else model
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = model.model_fields[part].annotation
        while get_origin(model) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            model = next(a for a in get_args(model) if a is not type(None))
        if get_origin(model) is list:
            model = get_args(model)[0]
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [k for k in model.model_fields if not k.startswith("_")]
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key written twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain value, not a {type(key).__name__}", key_node.start_mark
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (each key once per mapping)", key_node.start_mark
                )
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads 1e-3 (no dot) as a string; a suite means the number, as YAML 1.2 does.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)

_short = reprlib.Repr()
_short.maxlevel, _short.maxlist, _short.maxtuple, _short.maxdict = 2, 4, 4, 4
_short.maxstring = _short.maxother = 80


def short_repr(value: Any) -> str:
    """``repr`` cut to a readable length: a message quotes the bad value, not a megabyte of it."""
    return _short.repr(value)


def _plain_key(part: Any) -> bool:
    return isinstance(part, str) and part != "" and part.isprintable() and part.strip() == part and "." not in part


def format_path(loc: tuple[Any, ...]) -> str:
    """``experiments[0].sweep.seq_len``; a key that is not plain text is quoted: ``timing['\\n']``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _plain_key(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


def describe_error(exc: ValidationError) -> str:
    """One line: the path to the first bad value, the value and what is allowed."""
    errors = exc.errors()
    err = errors[0]
    loc = tuple(p for p in err["loc"] if p not in ("function-after[_split(), Component]",))
    path = format_path(loc) or "suite"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key{hint}{more}"
    if err["type"] == "missing":
        return f"{path}: required key is missing{more}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "value_error" or "input" not in err:
        return f"{path}: {msg}{more}"
    return f"{path}: {msg}, got {short_repr(err['input'])}{more}"


def parse_suite(text: str, source: str = "<suite>", max_points: int | None = MAX_POINTS) -> Suite:
    """Validate suite text; raise BadInput with one line naming the bad key or value.

    A suite that expands to more than ``max_points`` points is refused (``None``: no limit; the
    CLI's ``--yes``).
    """
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise BadInput(f"{source}: the YAML is nested too deeply to read") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise BadInput(f"{source}: {kind}{where}: {problem}") from None
    if data is None:
        raise BadInput(f"{source}: the suite is empty; it needs at least 'name' and 'experiments'")
    if not isinstance(data, dict):
        raise BadInput(f"{source}: a suite must be a mapping of keys, got a {type(data).__name__}")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"{source}: {describe_error(exc)}") from None
    except RecursionError:
        raise BadInput(f"{source}: the suite is nested too deeply (or refers to itself)") from None
    suite._text = text
    from archbench.registry import load_plugin

    for i, module in enumerate(suite.plugins):
        try:
            load_plugin(module)
        except BadInput as exc:
            raise BadInput(f"{source}: plugins[{i}]: {exc}") from None
    from archbench.plan import expand  # names and parameters are checked by expanding

    expand(suite, source=source, max_points=max_points)
    return suite


def load_suite(path: str | Path, max_points: int | None = MAX_POINTS) -> Suite:
    """Read and validate a suite file (see the module docstring for the format).

    More than ``max_points`` points is refused unless ``max_points`` is None (``--yes``).
    """
    path = Path(path)
    if not path.exists():
        raise BadInput(f"suite file {str(path)!r} does not exist")
    if not path.is_file():
        raise BadInput(f"suite {str(path)!r} is not a file; give the path of a .yaml suite")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start}); a suite is a YAML text file") from None
    suite = parse_suite(text, source=str(path), max_points=max_points)
    suite._path = str(path)
    return suite
