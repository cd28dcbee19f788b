"""Each built-in architecture, as it was: its parameters (names, shapes, count, and what a fixed seed
initialises them to), and its logits on a fixed input, for the forward and for decoding (a prompt,
then one step), against tests/fixtures/architecture_fingerprints.json.

The fixture was written from main's code before the families' embedding, positions and head moved
into architectures/backbone.py; a refactor that changes a parameter's name (a state_dict no longer
loads), its shape, the order the parameters are made in (other numbers under the same seed), or a
logit fails here. To write it anew, on purpose: ``PYTHONPATH=. python tests/test_architecture_fingerprint.py --write``.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from archbench import registry
from archbench.architectures.base import declared

FIXTURE = Path(__file__).parent / "fixtures" / "architecture_fingerprints.json"
VOCAB, BATCH, LENGTH, PROMPT = 11, 2, 12, 5
# the variants a family's shared input and output take: both framings, and every positional encoding
VARIANTS: dict[str, dict[str, Any]] = {
    **{f"transformer/{p}": {"kind": "transformer", "positional": p}
       for p in ("learned", "none", "rope", "alibi", "randomized")},
    "local_attention/learned": {"kind": "local_attention", "positional": "learned", "window": 4},
    "linear_attention/rope": {"kind": "linear_attention", "positional": "rope"},
}


def _builtins() -> dict[str, dict[str, Any]]:
    return {e.name: {"kind": e.name} for e in registry.architectures
            if e.source.startswith("archbench.")}


def _sums(t: torch.Tensor) -> list[float]:
    """The sum, the sum of magnitudes and a position-weighted sum: a change anywhere moves one of them."""
    x = t.detach().double().flatten()
    weights = torch.arange(1, x.numel() + 1, dtype=torch.float64) / x.numel()
    return [float(f"{float(v):.9g}") for v in (x.sum(), x.abs().sum(), (x * weights).sum())]


def fingerprint(spec: dict[str, Any], causal: bool) -> dict[str, Any]:
    params = {k: v for k, v in spec.items() if k != "kind"}
    factory = registry.architectures.get(spec["kind"])
    torch.manual_seed(0)
    model = factory(vocab_size=VOCAB, causal=causal, **params).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(VOCAB, (BATCH, LENGTH), generator=g)
    encoder_decoder = declared(factory, "framing") == "encoder_decoder"
    args = (torch.randint(VOCAB, (BATCH, LENGTH), generator=g), x) if encoder_decoder else (x,)
    out: dict[str, Any] = {
        "parameters": [[n, list(p.shape), _sums(p)] for n, p in model.named_parameters()],
        "state_dict": list(model.state_dict()),
        "count": sum(p.numel() for p in model.parameters()),
    }
    with torch.no_grad():
        out["logits"] = _sums(model(*args))
        if causal and not encoder_decoder and spec.get("positional") != "randomized":
            try:
                state = model.init_state(BATCH, LENGTH)
            except NotImplementedError:
                return out
            prompt, state = model.prefill(x[:, :PROMPT], state)
            step, _ = model.step(x[:, PROMPT], state)
            out["decoding"] = _sums(prompt) + _sums(step)
    return out


def _cases() -> dict[str, tuple[dict[str, Any], bool]]:
    """name/causal and name/bidirectional: the spec and the framing (an encoder-decoder is causal only)."""
    out = {}
    for name, spec in sorted({**_builtins(), **VARIANTS}.items()):
        both = declared(registry.architectures.get(spec["kind"]), "framing") != "encoder_decoder"
        for causal in (True, False) if both else (True,):
            out[f"{name}/{'causal' if causal else 'bidirectional'}"] = (spec, causal)
    return out


def fingerprints() -> dict[str, Any]:
    return {key: fingerprint(spec, causal) for key, (spec, causal) in _cases().items()}


EXPECTED = json.loads(FIXTURE.read_text(encoding="utf-8")) if FIXTURE.is_file() else {}


def _close(a: list[float], b: list[float]) -> bool:
    # CPU kernels may sum in another order elsewhere: a float32 rounding, never a changed model
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-5) for x, y in zip(a, b))


def _differences(now: dict[str, Any], was: dict[str, Any]) -> list[str]:
    bad = []
    if now["state_dict"] != was["state_dict"]:
        bad.append(f"state_dict keys: {now['state_dict']} != {was['state_dict']}")
    if now["count"] != was["count"]:
        bad.append(f"parameter count {now['count']} != {was['count']}")
    for (n, shape, sums), (n0, shape0, sums0) in zip(now["parameters"], was["parameters"]):
        if (n, shape) != (n0, shape0) or not _close(sums, sums0):
            bad.append(f"parameter {n} {shape} {sums} != {n0} {shape0} {sums0}")
    for key in ("logits", "decoding"):
        if (key in now) != (key in was) or (key in now and not _close(now[key], was[key])):
            bad.append(f"{key}: {now.get(key)} != {was.get(key)}")
    return bad


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_architecture_is_as_it_was(key):
    assert _differences(fingerprint(*_cases()[key]), EXPECTED[key]) == []


def test_the_fixture_covers_every_builtin_in_each_framing():
    assert sorted(EXPECTED) == sorted(_cases())


def test_a_changed_model_is_told_apart():
    """Another seed's initialisation, or one parameter more, is a difference."""
    was = EXPECTED["tcn/causal"]
    now = fingerprint({"kind": "tcn"}, True)
    assert _differences(now, was) == []
    shifted = {**now, "logits": [v * (1 + 1e-3) for v in now["logits"]]}
    assert any(d.startswith("logits") for d in _differences(shifted, was))
    grown = fingerprint({"kind": "tcn", "levels": 5}, True)
    assert any(d.startswith("parameter count") for d in _differences(grown, was))


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    lines = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fingerprints().items()]  # a case a line
    FIXTURE.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")
