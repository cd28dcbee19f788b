"""Receptive field: the closed form, the exact gradient support, and the effective field.

    rows = ReceptiveField().run(ctx)   # rf_theoretical, rf_empirical, erf_50, erf_90, erf_99

All of them look at one output position t = model.probe_position(T) (the last when causal, the
middle when not) and the gradient of a random projection of its logits with respect to the input
embeddings (the output of the model's first ``nn.Embedding``), in float64 so that a gradient
carried through hundreds of recurrent steps does not underflow to zero.

- ``rf_empirical``: the span of positions whose gradient is non-zero, on any of several random
  inputs (one backward each batch, all inputs in one batch). Zeros here are structural.
- ``erf_p``: Luo et al. (2016): the smallest window containing t (so ending at t when causal)
  that holds p of the gradient mass (|grad| summed over channels, averaged over the inputs).
- ``layers_to_cover``: the fewest layers (the architecture's ``depth_parameter``: TCN levels,
  Transformer or LSTM layers) for which output n-1 depends on input 0 (and, when not causal, the
  middle output on both ends), found by exponential then binary search over built models, each
  tested by forward-mode AD from the end inputs (see ``depends``); ``layers_to_cover_theory`` is
  the same search on the closed form.

Saved for the report (artifacts.jsonl): the gradient mass against lag from t, and the
|dy_t/dx_s| matrix of a short sequence (32 positions).
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from archbench import registry
from archbench.metrics.base import Context, Metric, Row, one_sequence
from archbench.registry import register_metric
from archbench.suite.point import Point

SHARES = {"erf_50": 0.50, "erf_90": 0.90, "erf_99": 0.99}
HEATMAP_LEN = 32
PROBES = 8          # random inputs per measurement
TANGENT_SCALE = 1e250  # see depends()
MAX_MEASURED_LAYERS = 256  # measured exactly up to here (tested); beyond, float64 cannot resolve
PROBE_WIDTH = 16    # channels of the models built only to find layers_to_cover: support does not depend on width


def embedding_of(model: nn.Module) -> nn.Embedding:
    embed = getattr(model, "embed", None)
    if isinstance(embed, nn.Embedding):
        return embed
    found = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if found is None:
        raise TypeError(f"{type(model).__name__} has no nn.Embedding: no input embeddings to take gradients of")
    return found


def gradient_mass(model: nn.Module, tokens: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
    """|d (logits[:, t] . r) / d embedding[:, s]| summed over channels: (B, T), float64."""
    model = copy.deepcopy(model).to(torch.float64).eval()
    captured: dict[str, torch.Tensor] = {}

    def leaf(module: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
        captured["x"] = out.detach().requires_grad_(True)
        return captured["x"]

    handle = embedding_of(model).register_forward_hook(leaf)
    try:
        logits = model(tokens)                                             # (B, T, V)
    finally:
        handle.remove()
    r = torch.randn(logits.shape[-1], generator=generator, dtype=torch.float64).to(logits.device)
    (logits[:, t] @ r).sum().backward()
    return captured["x"].grad.abs().sum(-1)                                # (B, T)


def support_span(mass: torch.Tensor) -> int:
    """Span of positions with a non-zero gradient on any input: max - min + 1."""
    nonzero = (mass > 0).any(0).nonzero().flatten()
    return int(nonzero.max() - nonzero.min() + 1) if len(nonzero) else 0


def erf_width(profile: torch.Tensor, t: int, share: float) -> int:
    """Width of the smallest window containing t that holds ``share`` of the gradient mass.

    For a causal model every window worth having ends at t (there is no mass after it); for a
    non-causal one the window lies around t, as far to each side as the mass asks.
    """
    profile = profile.to(torch.float64)
    total = float(profile.sum())
    if total <= 0:
        return 0
    T = len(profile)
    cum = torch.cat([profile.new_zeros(1), profile.cumsum(0)])         # cum[i] = mass of [0, i)
    lo = torch.arange(t + 1)
    need = cum[lo] + share * total * (1 - 1e-12)
    end = torch.searchsorted(cum, need)                                 # first i with cum[i] >= need
    hi = torch.maximum(end - 1, torch.full_like(end, t))                # window [lo, hi] must hold t
    ok = end <= T
    return int((hi - lo + 1)[ok].min())


def _tokens(vocab: int, batch: int, seq_len: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(vocab, (batch, seq_len), generator=generator).to(device)


@register_metric("receptive_field")
class ReceptiveField(Metric):
    name, unit, higher_is_better = "rf_empirical", "positions", True
    description = "rf_theoretical, rf_empirical (gradient support) and erf_50/90/99 (Luo et al.), at init"

    def produces(self) -> list[tuple[str, str, bool]]:
        return [("rf_theoretical", "positions", True), ("rf_empirical", "positions", True)] + [
            (name, "positions", True) for name in SHARES
        ]

    def run(self, ctx: Context) -> list[Row]:
        one_sequence(ctx, "receptive_field")
        model, T = ctx.model, ctx.point.seq_len
        gen = torch.Generator().manual_seed(ctx.point.seed)
        t = probe_position(model, T, ctx.point.causal)
        mass = gradient_mass(model, _tokens(vocab_of(ctx), PROBES, T, gen, ctx.device), t, gen)
        profile = mass.mean(0).cpu()
        lag = profile.flip(0)[T - 1 - t:] if ctx.point.causal else profile  # causal: mass at lag 0, 1, ...
        rows = []
        try:
            if getattr(model, "receptive_field", None) is None:
                raise NotImplementedError
            rows.append(Row("rf_theoretical", float(model.receptive_field(T)), "positions", True))
        except NotImplementedError:
            rows.append(Row("rf_theoretical", math.nan, "positions", True, status="skipped",
                            error=f"not provided: {ctx.point.arch_kind} defines no closed-form receptive field"))
        rows.append(Row("rf_empirical", float(support_span(mass)), "positions", True,
                        artifacts={"gradient_profile": lag.tolist(), "probe_position": t,
                                   "heatmap": self._heatmap(model, ctx, gen).tolist()}))
        rows += [Row(name, float(erf_width(profile, t, share)), "positions", True) for name, share in SHARES.items()]
        return rows

    @staticmethod
    def _heatmap(model: nn.Module, ctx: Context, gen: torch.Generator) -> torch.Tensor:
        """|dy_t/dx_s| (mass over channels, mean over inputs) for a short sequence: (T, T)."""
        n = min(HEATMAP_LEN, ctx.point.seq_len)
        tokens = _tokens(vocab_of(ctx), PROBES, n, gen, ctx.device)
        return torch.stack([gradient_mass(model, tokens, t, gen).mean(0).cpu() for t in range(n)])


def probe_position(model: nn.Module, seq_len: int, causal: bool) -> int:
    """The output position a field is measured at: the model's own ``probe_position`` when it has one
    (an archbench Architecture), else the last (causal) or the middle, for a plain ``nn.Module``."""
    own = getattr(model, "probe_position", None)
    return int(own(seq_len)) if callable(own) else (seq_len - 1 if causal else seq_len // 2)


def vocab_of(ctx: Context) -> int:
    """The vocabulary the point's model was built with (a plain ``nn.Module`` may not keep it)."""
    return int(getattr(ctx.model, "vocab_size", None) or ctx.task.vocab_size)


def probe_model(point: Point, vocab_size: int, layers: int) -> nn.Module:
    """The point's architecture with ``layers`` layers (its ``depth_parameter``), at most PROBE_WIDTH wide.

    For questions of structure (which input reaches which output, how many steps a layer takes),
    where the width changes nothing but the cost.
    """
    factory = registry.architectures.get(point.arch_kind)
    with torch.random.fork_rng():
        torch.manual_seed(point.seed)
        return factory(vocab_size=vocab_size, causal=point.causal, **probe_params(point, layers))


def probe_params(point: Point, layers: int) -> dict:
    """The parameters ``probe_model`` builds the point's architecture with."""
    depth = getattr(registry.architectures.get(point.arch_kind), "depth_parameter", None)
    if depth is None:
        raise TypeError(f"{point.arch_kind} names no depth_parameter: nothing to count layers of")
    params = dict(point.params)
    if "d_model" in params:
        params["d_model"] = min(params["d_model"], PROBE_WIDTH)
    if "heads" in params and "d_model" in params:
        params["heads"] = math.gcd(params["heads"], params["d_model"])
    return {**params, depth: layers}


def depends(model: nn.Module, tokens: torch.Tensor, s: int, t: int) -> bool:
    """Whether output t depends on input s: forward-mode AD of a tangent at embedding s, in float64.

    Forward mode keeps no activations (a plain CNN of thousands of levels fits in memory) and,
    unlike perturbing the input, loses no tiny dependence to rounding. The tangent is linear in
    its start, so it starts at 1e250 rather than 1: a dependence carried through a thousand
    levels (a product of ~1e-480) then still lands inside float64's range. The math attention
    kernel is used because the fused one has no forward AD.
    """
    model = copy.deepcopy(model).to(torch.float64).eval()

    def dual(module: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
        # A random direction: a constant one is a mean shift, which a LayerNorm removes exactly.
        tangent = torch.zeros_like(out)
        direction = torch.randn(out.shape[-1], generator=torch.Generator().manual_seed(s), dtype=out.dtype)
        tangent[:, s] = TANGENT_SCALE * direction.to(out.device)
        return fwAD.make_dual(out, tangent)

    handle = embedding_of(model).register_forward_hook(dual)
    try:
        with torch.no_grad(), fwAD.dual_level(), sdpa_kernel(SDPBackend.MATH):
            tangent = fwAD.unpack_dual(model(tokens)).tangent             # (B, T, V)
    finally:
        handle.remove()
    # Non-finite counts as dependent: an inf or NaN at t can only have come from input s.
    return bool((tangent[:, t] != 0).any())


def layers_needed(covers: Callable[[int], bool], limit: int = 4096, hint: int | None = None) -> int | None:
    """Fewest L >= 1 with covers(L), for covers monotone in L: exponential, then binary search.

    With a ``hint`` (the closed form's answer, where it has one), covers(hint) and not covers(hint - 1)
    settle it in two tests, the answer the search would find; otherwise the search runs."""
    if hint is not None and 1 <= hint <= limit and covers(hint) and (hint == 1 or not covers(hint - 1)):
        return hint
    hi = 1
    while not covers(hi):
        if hi >= limit:
            return None
        hi *= 2
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        if covers(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


@register_metric("layers_to_cover")
class LayersToCover(Metric):
    name, unit, higher_is_better = "layers_to_cover", "layers", False
    description = "fewest layers (levels) whose measured gradient support covers seq_len; and the closed form's"

    def produces(self) -> list[tuple[str, str, bool]]:
        return [("layers_to_cover", "layers", False), ("layers_to_cover_theory", "layers", False)]

    def run(self, ctx: Context) -> list[Row]:
        one_sequence(ctx, "layers_to_cover")
        point, n = ctx.point, ctx.point.seq_len
        if getattr(registry.architectures.get(point.arch_kind), "depth_parameter", None) is None:
            why = f"not provided: {point.arch_kind} names no depth_parameter (the parameter counting its layers)"
            return [Row(name, math.nan, unit, hib, status="skipped", error=why) for name, unit, hib in self.produces()]
        gen = torch.Generator().manual_seed(point.seed)

        def build(layers: int) -> nn.Module:
            return probe_model(point, vocab_of(ctx), layers)

        tokens = _tokens(vocab_of(ctx), 2, n, gen, torch.device("cpu"))

        @functools.cache  # the hint's two tests may be asked again by the search
        def measured(layers: int) -> bool:
            model = build(layers)
            t = probe_position(model, n, point.causal)
            return all(depends(model, tokens, s, t) for s in ([0] if point.causal else [0, n - 1]))

        def theory(layers: int) -> bool:
            model = build(layers)
            if getattr(model, "receptive_field", None) is None:
                raise NotImplementedError
            return model.receptive_field(n) >= n

        hint = None
        try:
            hint = expected = layers_needed(theory)
            rows = [Row("layers_to_cover_theory", float(expected) if expected else math.nan, "layers", False)]
        except NotImplementedError:  # a plugin without a closed form: the measurement still runs
            rows = [Row("layers_to_cover_theory", math.nan, "layers", False, status="skipped",
                        error=f"not provided: {point.arch_kind} defines no closed-form receptive field")]
        # The closed form's answer is tested first (two models, where the search builds a dozen: the
        # deepest here, a local attention of 35 layers at n = 512, took 4 CPU s by the search alone)
        found = layers_needed(measured, limit=MAX_MEASURED_LAYERS, hint=hint)
        if found is None:
            # Through more layers the dependence of output n-1 on input 0 is a product of
            # thousands of weights, below float64's range even from a 1e250 tangent.
            rows.insert(0, Row("layers_to_cover", math.nan, "layers", False, status="skipped",
                               error=f"not covered within {MAX_MEASURED_LAYERS} layers, the most float64 "
                                     "resolves; see layers_to_cover_theory"))
        else:
            rows.insert(0, Row("layers_to_cover", float(found), "layers", False))
        return rows
