"""The architecture contract as pytest checks, for plugin authors (archbench's own tests use them too).

    # tests/test_my_model.py, in the plugin's package
    import my_package  # noqa: F401  (registers "my_gru")
    from archbench.testing import check_architecture

    def test_my_gru_follows_the_contract():
        assert check_architecture("my_gru", d_model=16)["flops"] in ("ok", "not provided", "not countable")

``check_architecture(kind, **params)`` builds the registered architecture (causal and not) and runs:

- ``shape``: token ids (B, T) -> finite float32 logits (B, T, vocab_size);
- ``causal``: with ``causal=True``, changing input t changes no output before t (bit for bit, or
  within the model's ``causal_tolerance``, relative, where it declares one: an FFT convolution)
  and does change output t; with ``causal=False``, some output before t sees input t;
- ``receptive_field``: the declared ``receptive_field(T)`` equals the span of input positions
  with a non-zero gradient at ``probe_position(T)`` (float64, as the ``receptive_field`` metric);
- ``flops``: the declared ``flops(B, T)`` equals what ``torch.utils.flop_counter.FlopCounterMode``
  counts (attention on the math kernel, which it can count), or that less the model's
  ``uncounted_flops(B, T)`` where it declares work the counter may not see (an FFT; a fused
  recurrence such as oneDNN's LSTM, counted as 0, where nn.GRU on the CPU is counted in full).

``check_decoding(model)`` checks incremental decoding (archbench.architectures.decoding), for a
causal model that provides it: prefill a prompt, then step token by token, and the logits equal the
full causal forward's at every position, within the model's ``decode_tolerance`` (absolute, on
float32 logits; 1e-4 unless it declares another); stepping twice from one state gives the same
logits bit for bit; and the declared ``decode_flops(B, c)`` equals FlopCounterMode's count of a
step at context c (where countable). It returns ``"not provided"`` for a model without the methods
and ``"not causal"`` for ``causal=False``; ``decoding_difference`` gives the largest difference.

    assert check_decoding(build("my_gru", causal=True, d_model=16)) == "ok"

``check_encoder_decoder(model)`` checks an encoder-decoder (archbench.architectures.encoder_decoder)
on a source and a target of different lengths: logits (B, T, V); output t sees target tokens <= t only
(bit for bit, or within the decoder's ``causal_tolerance``) and the whole source; prefill then steps from ``init_state(..., source=...)`` give the
teacher-forced forward's logits within ``decode_tolerance``, and re-stepping is exact; the declared
``flops(B, S, T)`` equals FlopCounterMode's count (less a part's ``uncounted_flops``) and is
``encoder_flops + decoder_flops``. ``is_encoder_decoder(kind)`` tells such kinds from the others,
which ``check_architecture`` and ``check_decoding`` are for.

Each check raises AssertionError naming the architecture and what differs. Optional parts of the
contract are reported, not failed: ``"not provided"`` when ``flops`` / ``receptive_field`` raise
NotImplementedError, ``"not countable"`` when the counter counts nothing (a fused kernel, as
``nn.LSTM``'s).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from archbench import registry
from archbench.architectures import base
from archbench.architectures.base import build_architecture
from archbench.architectures.decoding import NOT_PROVIDED, unsupported
from archbench.metrics.receptive_field import gradient_mass, support_span

VOCAB, BATCH, SEQ_LEN = 11, 2, 24


def build(kind: str, causal: bool, vocab_size: int = VOCAB, seed: int = 0, **params: Any) -> nn.Module:
    """The registered architecture in eval mode, its weights drawn from ``seed`` (global RNG restored)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_architecture(kind, vocab_size=vocab_size, causal=causal, **params).eval()


def tokens(model: nn.Module, batch: int = BATCH, seq_len: int = SEQ_LEN, seed: int = 0) -> torch.Tensor:
    return torch.randint(model.vocab_size, (batch, seq_len), generator=torch.Generator().manual_seed(seed))


def check_shape(model: nn.Module, batch: int = BATCH, seq_len: int = SEQ_LEN) -> str:
    name = type(model).__name__
    with torch.no_grad():
        out = model(tokens(model, batch, seq_len))
    assert out.shape == (batch, seq_len, model.vocab_size), f"{name}: logits of shape {tuple(out.shape)}, " \
        f"expected {(batch, seq_len, model.vocab_size)}"
    assert out.dtype == torch.float32, f"{name}: logits of dtype {out.dtype}, expected torch.float32"
    assert torch.isfinite(out).all(), f"{name}: non-finite logits"
    return "ok"


def check_causality(model: nn.Module, batch: int = BATCH, seq_len: int = SEQ_LEN) -> str:
    """Change input t = seq_len // 2 only; causal: outputs before t unchanged, output t changed;
    not causal: some output before t changed."""
    name, t = type(model).__name__, seq_len // 2
    x = tokens(model, batch, seq_len)
    y = x.clone()
    y[:, t] = (y[:, t] + 1) % model.vocab_size
    with torch.no_grad():
        a, b = model(x), model(y)
    if not model.causal:
        assert not torch.allclose(a[:, :t], b[:, :t]), f"{name} (causal=False): no output before {t} saw input {t}"
        return "ok"
    tolerance = base.declared(model, "causal_tolerance")
    if tolerance:
        leak = float((a[:, :t] - b[:, :t]).abs().max() / a[:, :t].abs().max())
        assert leak <= tolerance, f"{name}: outputs before {t} changed by {leak:.2g} (relative) when only " \
            f"input {t} changed; causal_tolerance is {tolerance:g}"
    else:
        assert torch.equal(a[:, :t], b[:, :t]), f"{name}: an output before {t} changed when only input {t} changed"
    assert not torch.allclose(a[:, t], b[:, t]), f"{name}: output {t} did not see input {t}"
    return "ok"


def check_receptive_field(model: nn.Module, seq_len: int = SEQ_LEN, probes: int = 4) -> str:
    """The declared receptive field against the gradient support at ``probe_position(seq_len)``."""
    try:
        declared = model.receptive_field(seq_len)
    except NotImplementedError:
        return "not provided"
    g = torch.Generator().manual_seed(1)
    t = model.probe_position(seq_len)
    measured = support_span(gradient_mass(model, tokens(model, probes, seq_len, seed=1), t, g))
    assert declared == measured, f"{type(model).__name__} (causal={model.causal}): receptive_field({seq_len}) " \
        f"is {declared}, the gradient at position {t} reaches {measured} positions"
    return "ok"


def counted_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``model(x)`` as FlopCounterMode counts them, attention on the (countable) math kernel."""
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def check_flops(model: nn.Module, batch: int = BATCH, seq_len: int = SEQ_LEN) -> str:
    try:
        declared = model.flops(batch, seq_len)
    except NotImplementedError:
        return "not provided"
    counted = counted_flops(model, tokens(model, batch, seq_len))
    if counted == 0:
        return "not countable"
    uncounted = model.uncounted_flops(batch, seq_len) if hasattr(model, "uncounted_flops") else 0
    assert counted in (declared, declared - uncounted), f"{type(model).__name__} (causal={model.causal}): flops({batch}, " \
        f"{seq_len}) is {declared}" + (f" ({uncounted} uncounted)" if uncounted else "") + \
        f", FlopCounterMode counts {counted}"
    return "ok"


def decoding_difference(model: nn.Module, batch: int = BATCH, seq_len: int = SEQ_LEN,
                        prompt: int | None = None) -> float:
    """Largest |logit| difference between prefill (``prompt`` tokens, seq_len // 3 by default) then
    steps, and the full forward, over all positions."""
    prompt = seq_len // 3 if prompt is None else prompt
    x = tokens(model, batch, seq_len, seed=2)
    with torch.no_grad():
        full = model(x)                                                          # (B, T, V)
        logits, state = model.prefill(x[:, :prompt], model.init_state(batch, seq_len))
        pieces = [logits]
        for t in range(prompt, seq_len):
            logits, state = model.step(x[:, t], state)                           # (B, V)
            pieces.append(logits[:, None])
    stepped = torch.cat(pieces, 1)
    name = type(model).__name__
    assert stepped.shape == full.shape, f"{name}: prefill and steps gave logits {tuple(stepped.shape)}, " \
        f"the forward {tuple(full.shape)}"
    return float((stepped - full).abs().max())


def check_decoding(model: nn.Module, batch: int = BATCH, seq_len: int = SEQ_LEN) -> str:
    """Prefill + steps == the full forward; a state stepped from twice gives the same logits;
    ``decode_flops`` == FlopCounterMode's count of one step (see the module docstring)."""
    why = unsupported(model)
    if why is not None:
        return NOT_PROVIDED if why == NOT_PROVIDED else "not causal"
    name = type(model).__name__
    tolerance = base.declared(model, "decode_tolerance")
    diff = decoding_difference(model, batch, seq_len)
    assert diff <= tolerance, f"{name}: prefill then step gave logits {diff:.3g} from the full forward's " \
        f"(decode_tolerance {tolerance:g})"
    x = tokens(model, batch, seq_len, seed=3)
    context = seq_len // 2
    with torch.no_grad():
        _, state = model.prefill(x[:, :context], model.init_state(batch, context + 1))
        first, _ = model.step(x[:, context], state)
        again, _ = model.step(x[:, context], state)
        assert torch.equal(first, again), f"{name}: stepping twice from one state gave different logits " \
            "(step changed what the state passed in means)"
        try:
            declared = model.decode_flops(batch, context)
        except NotImplementedError:
            return "ok"
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model.step(x[:, context], state)
    counted = counter.get_total_flops()
    uncounted = model.uncounted_flops(batch, 1) if hasattr(model, "uncounted_flops") else 0
    assert counted in (0, declared, declared - uncounted), f"{name}: decode_flops({batch}, {context}) is " \
        f"{declared}, FlopCounterMode counts {counted} for one step"
    return "ok"


def is_encoder_decoder(kind: str) -> bool:
    """Whether the registered ``kind`` reads a source and a target (its class declares the framing)."""
    return base.declared(registry.architectures.get(kind), "framing") == "encoder_decoder"


def check_encoder_decoder(model: nn.Module, batch: int = BATCH, source_len: int = 9, target_len: int = 6) -> str:
    """The encoder-decoder contract (module docstring); "ok" or an AssertionError naming what differs."""
    name, V, t = type(model).__name__, model.vocab_size, target_len // 2
    g = torch.Generator().manual_seed(4)
    src, tgt = torch.randint(V, (batch, source_len), generator=g), torch.randint(V, (batch, target_len), generator=g)
    other_tgt, other_src = tgt.clone(), src.clone()
    other_tgt[:, t] = (other_tgt[:, t] + 1) % V
    other_src[:, -1] = (other_src[:, -1] + 1) % V
    with torch.no_grad():
        full = model(src, tgt)
        assert full.shape == (batch, target_len, V) and full.dtype == torch.float32, f"{name}: logits " \
            f"{tuple(full.shape)} {full.dtype}, expected {(batch, target_len, V)} torch.float32"
        moved = model(src, other_tgt)
        leak = float((full[:, :t] - moved[:, :t]).abs().max() / full[:, :t].abs().max())
        assert leak <= base.declared(model, "causal_tolerance"), f"{name}: an output before {t} changed by " \
            f"{leak:.2g} (relative) with target token {t}"
        assert not torch.allclose(full[:, t], moved[:, t]), f"{name}: output {t} did not see target token {t}"
        assert not torch.allclose(full[:, 0], model(other_src, tgt)[:, 0]), \
            f"{name}: the first output did not see the source's last token"
        state = model.init_state(batch, target_len, source=src)
        logits, state = model.prefill(tgt[:, :2], state)
        pieces = [logits]
        for i in range(2, target_len):
            first, _ = model.step(tgt[:, i], state)
            again, state = model.step(tgt[:, i], state)
            assert torch.equal(first, again), f"{name}: stepping twice from one state gave different logits"
            pieces.append(again[:, None])
    diff = float((torch.cat(pieces, 1) - full).abs().max())
    tolerance = base.declared(model, "decode_tolerance")
    assert diff <= tolerance, f"{name}: prefill then step gave logits {diff:.3g} from the teacher-forced forward's"
    analytic = model.flops(batch, source_len, target_len)
    assert analytic == model.encoder_flops(batch, source_len) + model.decoder_flops(batch, target_len, source_len), \
        f"{name}: flops is not encoder_flops + decoder_flops"
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(src, tgt)
    # each part's fused recurrence may go uncounted (oneDNN's LSTM) or be counted (nn.RNN on the CPU)
    parts = [base.declared(p, "uncounted_flops")(batch, n)
             for p, n in ((model.encoder, source_len), (model.decoder, target_len))]
    allowed = {analytic, analytic - parts[0], analytic - parts[1], analytic - sum(parts)}
    counted = counter.get_total_flops()
    assert counted in allowed, f"{name}: flops({batch}, {source_len}, {target_len}) is {analytic} " \
        f"({sum(parts)} uncounted), FlopCounterMode counts {counted}"
    with torch.no_grad():  # one decode step at a context of 2 target tokens, against the whole source
        _, state = model.prefill(tgt[:, :2], model.init_state(batch, 3, source=src))
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model.step(tgt[:, 2], state)
    declared = model.decode_flops(batch, 2, source_len=source_len)
    uncounted = base.declared(model.decoder, "uncounted_flops")(batch, 1)
    assert counter.get_total_flops() in {declared, declared - uncounted}, f"{name}: decode_flops({batch}, 2, " \
        f"source_len={source_len}) is {declared} ({uncounted} uncounted), FlopCounterMode counts " \
        f"{counter.get_total_flops()} on one step"
    return "ok"


CHECKS = {"shape": check_shape, "causality": check_causality,
          "receptive_field": check_receptive_field, "flops": check_flops}


def check_architecture(kind: str, causal: tuple[bool, ...] = (True, False), **params: Any) -> dict[str, str]:
    """Run every check on ``kind`` built with ``params``, causal and not; raise on the first failure.

    Returns {"<check>" or "<check> (causal=False)": "ok" | "not provided" | "not countable"}.
    """
    results = {}
    for c in causal:
        model = build(kind, c, **params)
        for name, check in CHECKS.items():
            results[name if c else f"{name} (causal=False)"] = check(model)
    return results


__all__ = ["check_architecture", "check_decoding", "check_encoder_decoder", "is_encoder_decoder", "decoding_difference", "check_shape", "check_causality", "check_receptive_field", "check_flops",
           "counted_flops", "build", "tokens", "CHECKS"]
