"""archbench.expand: how many points, in what order, and ids that are stable and sensitive to
exactly what changes the numbers. Nothing here runs a model."""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import pytest
import yaml

import archbench
from archbench.errors import BadInput
from archbench.suite.load import parse_suite
from archbench.suite.plan import count_points
from archbench.suite.point import Point, canonical_json

ROOT = Path(__file__).resolve().parents[1]


def expand(suite_text: str, device: str = "cpu") -> list[Point]:
    return archbench.expand(parse_suite(suite_text, source="s.yaml"), device=device)


def suite(top: dict | None = None, **exp) -> str:
    e = {"name": "e", "architectures": ["lstm"], "metrics": ["latency"], "sweep": {"seq_len": [8]}}
    e.update(exp)
    return yaml.safe_dump({"name": "t", **(top or {}), "experiments": [e]}, sort_keys=False)


def ids(points: list[Point]) -> list[str]:
    return [p.id for p in points]


BIG = suite(
    top={"seeds": [0, 1]},
    architectures=["lstm", {"kind": "tcn", "dilation_base": [1, 2], "levels": [2, 3]}, {"kind": "transformer", "heads": [2, 4]}],
    task={"kind": "uniform", "vocab_size": [16, 32]},
    passes=["forward", "train_step"],
    causal=[True, False],
    sweep={"seq_len": [8, 16, 32], "batch": [1, 2], "d_model": [32, 64]},
)


# --------------------------------------------------------------------------------------- count


def test_count_is_the_product_of_the_sweep():
    points = expand(BIG)
    shapes = 3 * 2 * 2          # seq_len x batch x d_model
    runs = 2 * 2 * 2 * 2        # passes x seeds x causal x task vocab_size
    archs = 1 + 2 * 2 + 2       # lstm, tcn (dilation_base x levels), transformer (heads)
    assert len(points) == shapes * runs * archs == 1344
    assert len(set(ids(points))) == len(points)


def test_quick_yaml_count():
    points = archbench.expand(archbench.load_suite(ROOT / "suites" / "quick.yaml"), device="cpu")
    # latency: seq_len x passes x archs; receptive field; layers to cover; graph: seq_len x archs;
    # generation: contexts x archs; accuracy: copy memory (3 archs), positional encoding (2)
    assert len(points) == 4 * 2 * 8 + 3 + 2 * 2 + 5 * 8 + 3 * 3 + 3 + 2


def test_experiment_seeds_override_suite_seeds():
    points = expand(suite(top={"seeds": [0, 1, 2]}, seeds=[7]))
    assert [p.seed for p in points] == [7]
    assert [p.seed for p in expand(suite(top={"seeds": [0, 1, 2]}))] == [0, 1, 2]


# --------------------------------------------------------------------------------------- order


def test_order_architectures_innermost():
    points = expand(suite(
        top={"seeds": [0, 1]},
        architectures=["lstm", {"kind": "tcn", "dilation_base": [1, 2]}],
        passes=["forward", "backward"],
        causal=[True, False],
        sweep={"seq_len": [16, 8], "batch": [2, 1], "d_model": [32, 16]},
    ))
    archs = [("lstm", None), ("tcn", 1), ("tcn", 2)]
    expected = list(itertools.product([16, 8], [2, 1], [32, 16], ["forward", "backward"], [0, 1], [True, False], archs))
    got = [
        (p.seq_len, p.batch, p.params["d_model"], p.pass_, p.seed, p.causal, (p.arch, p.params.get("dilation_base") if p.arch == "tcn" else None))
        for p in points
    ]
    assert got == expected


def test_experiments_in_file_order():
    text = yaml.safe_dump({"name": "t", "experiments": [
        {"name": n, "architectures": "lstm", "metrics": "latency", "sweep": {"seq_len": 8}} for n in ["z", "a", "m"]
    ]})
    assert [p.experiment for p in expand(text)] == ["z", "a", "m"]


def test_shared_param_reaches_every_architecture_and_defaults_fill_in():
    points = expand(suite(architectures=["lstm", "tcn", "transformer"], sweep={"seq_len": 8, "d_model": 32}))
    assert [p.params for p in points] == [
        {"d_model": 32, "layers": 2},
        {"d_model": 32, "kernel_size": 3, "levels": 4, "dilation_base": 2, "dropout": 0.0},
        {"d_model": 32, "heads": 4, "layers": 2, "positional": "sinusoidal", "max_len": 8192,
         "attention_scale": "sqrt_d"},
    ]
    assert all(dict(p.task_params) == {"vocab_size": 32} for p in points)


# ------------------------------------------------------------------------------------- ids stay


def test_expanding_twice_gives_the_same_ids():
    parsed = parse_suite(BIG)
    assert ids(archbench.expand(parsed, device="cpu")) == ids(archbench.expand(parsed, device="cpu"))


def test_parsing_twice_gives_the_same_ids():
    assert ids(expand(BIG)) == ids(expand(BIG))


REORDERED_A = """\
name: t
seeds: [0, 1]
dtype: float32
experiments:
  - name: e
    architectures: [{kind: tcn, levels: 2, kernel_size: 3}, {kind: transformer, heads: 2, layers: 1}]
    task: {kind: uniform, vocab_size: 16}
    metrics: [latency]
    sweep: {seq_len: [8, 16], batch: 2, d_model: 32}
"""
REORDERED_B = """\
# the same suite: keys in another order, block style, comments, another description
experiments:
  - sweep:
      d_model: 32
      batch: [2]
      seq_len: [8, 16]
    metrics: latency
    task: {vocab_size: 16, kind: uniform}
    architectures:
      - {kernel_size: 3, kind: tcn, levels: 2}
      - layers: 1
        heads: 2
        kind: transformer
    name: e
dtype: float32
description: words do not change the numbers
seeds: [0, 1]
name: t
"""


def test_reordering_keys_keeps_ids():
    assert ids(expand(REORDERED_A)) == ids(expand(REORDERED_B))


def test_reordering_shared_sweep_params_keeps_the_set_of_ids():
    a = expand(suite(architectures=["transformer"], sweep={"seq_len": 8, "d_model": [32, 64], "layers": [1, 2]}))
    b = expand(suite(architectures=["transformer"], sweep={"layers": [1, 2], "d_model": [32, 64], "seq_len": 8}))
    assert sorted(ids(a)) == sorted(ids(b)) and len(a) == 4


@pytest.mark.parametrize(
    "a, b",
    [
        ({"architectures": ["tcn"]}, {"architectures": [{"kind": "tcn", "kernel_size": 3, "levels": 4, "dropout": 0.0}]}),
        ({"architectures": [{"kind": "tcn", "dropout": 0}]}, {"architectures": [{"kind": "tcn", "dropout": 0.0}]}),
        ({"sweep": {"seq_len": 8}}, {"sweep": {"seq_len": [8], "batch": [1]}}),
        ({"sweep": {"seq_len": 8, "d_model": 64}}, {"sweep": {"seq_len": 8}}),
        ({"task": "uniform"}, {"task": {"kind": "uniform", "vocab_size": 32}}),
        ({"passes": "forward", "causal": True}, {}),
    ],
    ids=["defaults-spelled-out", "int-vs-float", "scalar-vs-list", "shared-default", "task-default", "experiment-defaults"],
)
def test_equivalent_spellings_give_the_same_id(a, b):
    assert ids(expand(suite(**a))) == ids(expand(suite(**b)))


# ----------------------------------------------------------------------------------- ids change

BASE = dict(architectures=[{"kind": "tcn", "levels": 2}], sweep={"seq_len": 8, "batch": 2, "d_model": 32})


@pytest.mark.parametrize(
    "top, exp",
    [
        ({}, {"sweep": {"seq_len": 16, "batch": 2, "d_model": 32}}),
        ({}, {"sweep": {"seq_len": 8, "batch": 4, "d_model": 32}}),
        ({}, {"sweep": {"seq_len": 8, "batch": 2, "d_model": 64}}),
        ({}, {"architectures": [{"kind": "tcn", "levels": 3}]}),
        ({}, {"architectures": [{"kind": "tcn", "levels": 2, "dropout": 0.1}]}),
        ({}, {"architectures": [{"kind": "tcn", "levels": 2, "label": "cnn"}]}),
        ({}, {"passes": "train_step"}),
        ({}, {"seeds": 1}),
        ({}, {"causal": False}),
        ({}, {"task": {"kind": "uniform", "vocab_size": 16}}),
        ({"dtype": "bfloat16"}, {}),
        ({"threads": 2}, {}),
    ],
    ids=["seq_len", "batch", "d_model", "arch-param", "dropout", "label", "pass", "seed", "causal", "task-param", "dtype", "threads"],
)
def test_changing_a_measured_value_changes_the_id(top, exp):
    [before] = expand(suite(**BASE))
    [after] = expand(suite(top, **{**BASE, **exp}))
    assert after.id != before.id


def test_changing_the_device_changes_the_id():
    [cpu] = expand(suite(**BASE), device="cpu")
    [cuda] = expand(suite(**BASE), device="cuda")
    assert cpu.id != cuda.id and cuda.device == "cuda"


def test_description_and_timing_do_not_change_the_id():
    [before] = expand(suite(**BASE))
    [after] = expand(suite({"description": "other words", "timing": {"min_samples": 3}}, **BASE))
    assert after.id == before.id


def _other(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):  # params: change the first value
        (k, v), *rest = value
        return ((k, _other(v)), *rest)
    if isinstance(value, tuple) and not value:  # training, empty for a point that does not train
        return (("steps", 10),)
    return (*value, "extra")  # metrics


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Point) if f.name != "id"])
def test_every_field_is_in_the_id(name):
    [p] = expand(suite(**BASE))
    q = dataclasses.replace(p, **{name: _other(getattr(p, name))})
    assert q != p and q.id != p.id


# ------------------------------------------------------------------------------ round trip, golden


def test_point_round_trips_through_a_dict_and_json():
    points = expand(BIG)
    for p in points:
        d = p.to_dict()
        assert d["id"] == p.id and d["pass"] == p.pass_
        for q in (Point.from_dict(d), Point.from_dict(json.loads(json.dumps(d)))):
            assert q == p and q.id == p.id


GOLDEN = """\
name: golden
experiments:
  - name: e
    architectures: [{kind: tcn, kernel_size: 3, levels: 2}]
    task: {kind: uniform, vocab_size: 16}
    metrics: [latency]
    passes: [forward]
    sweep: {seq_len: 32, batch: 4, d_model: 16}
"""


def test_golden_id():
    # Pinned when the hashing scheme was written. Results store these ids; changing how a point
    # is hashed (the fields, their names, the JSON, the digest) breaks the comparison of new
    # results with every earlier one. Change this value only on purpose, and say so.
    [p] = expand(GOLDEN, device="cpu")
    assert canonical_json(p.key()) == (
        '{"arch":"tcn","arch_kind":"tcn","arch_params":{"d_model":16,"dilation_base":2,"dropout":0.0,'
        '"kernel_size":3,"levels":2},"batch":4,"causal":true,"device":"cpu","dtype":"float32","experiment":"e",'
        '"metrics":["latency"],"pass":"forward","seed":0,"seq_len":32,"task":"uniform","task_params":{"vocab_size":16},'
        '"threads":1}'
    )
    assert p.id == "dd141f7e70b9"


# ---------------------------------------------------------------------------- labels, per-arch lists


def test_labels_make_same_architectures_distinct():
    points = expand(suite(architectures=[{"kind": "tcn", "label": "a"}, {"kind": "tcn", "label": "b"}], sweep={"seq_len": [8, 16]}))
    assert [(p.seq_len, p.arch, p.arch_kind) for p in points] == [
        (8, "a", "tcn"), (8, "b", "tcn"), (16, "a", "tcn"), (16, "b", "tcn"),
    ]
    assert points[0].params == points[1].params and points[0].id != points[1].id
    assert len(set(ids(points))) == 4


def test_same_architecture_twice_without_labels_is_a_duplicate_point():
    with pytest.raises(BadInput) as info:  # issue R: one label per architecture within an experiment
        expand(suite(architectures=["tcn", {"kind": "tcn", "dilation_base": 2}]))
    msg = str(info.value)
    assert msg.startswith("s.yaml: experiments[0].architectures: architectures[0] and architectures[1] are both "
                          "labelled 'tcn'")
    assert "own label" in msg and "\n" not in msg


def test_same_kind_different_params_without_labels_are_distinct():
    with pytest.raises(BadInput, match="both labelled 'tcn'"):  # issue R: their results would be pooled
        expand(suite(architectures=[{"kind": "tcn", "levels": 2}, {"kind": "tcn", "levels": 3}]))
    points = expand(suite(architectures=[{"kind": "tcn", "levels": 2, "label": "tcn2"},
                                         {"kind": "tcn", "levels": 3, "label": "tcn3"}]))
    assert [p.params["levels"] for p in points] == [2, 3] and points[0].id != points[1].id


def test_per_architecture_list_param_is_swept():
    points = expand(suite(architectures=["lstm", {"kind": "tcn", "dilation_base": [1, 2]}], sweep={"seq_len": [8, 16]}))
    assert [(p.seq_len, p.arch, p.params.get("dilation_base")) for p in points] == [
        (8, "lstm", None), (8, "tcn", 1), (8, "tcn", 2),
        (16, "lstm", None), (16, "tcn", 1), (16, "tcn", 2),
    ]
    assert len(set(ids(points))) == 6


def test_ids_look_like_ids():
    assert all(len(i) == 12 and set(i) <= set("0123456789abcdef") for i in ids(expand(BIG)))


def test_a_fixed_token_budget_sets_the_batch():
    suite = parse_suite(
        "name: t\nexperiments:\n  - {name: e, architectures: lstm, metrics: latency,"
        " sweep: {seq_len: [64, 128, 256], tokens: 1024}}\n", source="s.yaml")
    points = archbench.expand(suite, device="cpu")
    assert [(p.seq_len, p.batch) for p in points] == [(64, 16), (128, 8), (256, 4)]
    assert all(p.seq_len * p.batch == 1024 for p in points)
    assert count_points(suite) == 3


@pytest.mark.parametrize("sweep, message", [
    ("{seq_len: [64, 100], tokens: 1024}", "tokens 1024 is not a multiple of seq_len 100"),
    ("{seq_len: 64, tokens: 1024, batch: 2}", "either batch or tokens"),
])
def test_a_token_budget_must_divide_and_replaces_the_batch(sweep, message):
    with pytest.raises(BadInput, match=message):
        parse_suite(f"name: t\nexperiments:\n  - {{name: e, architectures: lstm, metrics: latency, sweep: {sweep}}}\n",
                    source="s.yaml")
