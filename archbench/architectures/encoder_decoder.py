"""Encoder-decoder models of any two registered families, composed by one mechanism.

    model = archbench.build_architecture("encoder_decoder", vocab_size=16, encoder="lstm", decoder="tcn",
                                         bridge="cross_attention")
    logits = model(source, target_inputs)          # (B, S), (B, T) -> (B, T, V), teacher forcing
    memory = model.encode(source)                  # (B, S, d_enc): the encoder pass
    logits = model.decode(memory, target_inputs)   # the decoder pass
    tokens = greedy_translate(model, source, start, length=T)   # (B, T), by incremental decoding

The encoder is a registered architecture built non-causal (a bidirectional LSTM, a centred TCN,
unmasked attention), the decoder one built causal; each keeps its embedding and its layers, and
its output head gives way to the hidden states (so a plugin with ``embed`` and ``head`` layers can
be either). The bridge (archbench.architectures.bridges) joins them: ``cross_attention`` reading the
encoder's states inside each decoder layer (a decoder that exposes its layers: the Transformer, as
Vaswani et al.; the TCN, as ConvS2S) or in blocks on top of the decoder (an LSTM, as Luong et al.;
any other), or ``final_state``, the encoder's last state as the decoder's first. One output head
follows.

Decoding (archbench.architectures.decoding) follows K's contract with the source passed to
``init_state``: it runs the encoder once and keeps what the bridge needs (the memory's keys and
values, or nothing beyond the decoder's initial state) beside the decoder's own state (its
key-value cache, its recurrent state, its convolution queues). A decode step is the decoder's step
with the bridge inside its layers or after them, on that one position. Tasks are posed in the
``encoder_decoder`` framing (archbench.tasks.base) for any model whose class declares
``framing = "encoder_decoder"``.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import ValidationError
from torch import nn

from archbench import registry
from archbench.architectures.base import Architecture, build_architecture, declared, head_flops
from archbench.architectures.bridges import BRIDGES, Placement
from archbench.architectures.decoding import DecodeState
from archbench.errors import BadInput
from archbench.parameters import ParameterError, PositiveInt
from archbench.registry import register_architecture

Bridge = Literal["cross_attention", "final_state"]


@dataclass(frozen=True)
class Seq2SeqState:
    """The decoder's own state, what the bridge keeps of the source, and the target tokens it holds."""

    decoder: Any
    memory: tuple[Any, ...]
    source_len: int
    length: int = 0


def half_params(kind: str, role: str, d_model: int, layers: int, heads: int) -> dict[str, Any]:
    """The parameters the registered architecture ``kind`` takes as an encoder or decoder: ``d_model``,
    ``layers`` as its depth parameter and ``heads`` where it takes them; ParameterError naming ``role``
    for a name that is not a one-sequence architecture or parameters it refuses."""
    if kind not in registry.architectures:
        raise ParameterError(role, registry.architectures.unknown_message(kind))
    factory = registry.architectures.get(kind)
    if declared(factory, "framing") == "encoder_decoder":
        raise ParameterError(role, f"{kind!r} is itself an encoder-decoder; {'an' if role == 'encoder' else 'a'} "
                                   f"{role} is a one-sequence architecture")
    names = {p["name"] for p in registry.architectures.parameters(kind)}
    wanted = {"d_model": d_model, getattr(factory, "depth_parameter", None) or "": layers, "heads": heads}
    params = {k: v for k, v in wanted.items() if k in names}
    try:
        registry.architectures.validate(kind, params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ParameterError(role, f"{role} {kind}.{'.'.join(map(str, err['loc']))}: {err['msg']}, got "
                                   f"{err.get('input')!r}") from None
    except ValueError as exc:
        raise ParameterError(role, f"{role} {kind}: {exc}") from None
    return params


def part(kind: str, role: str, vocab_size: int, causal: bool, d_model: int, layers: int,
         heads: int) -> tuple[nn.Module, int]:
    """The registered architecture ``kind`` as an encoder or decoder (``half_params``), and the width of its
    hidden states: its output head replaced by the identity."""
    params = half_params(kind, role, d_model, layers, heads)
    model = build_architecture(kind, vocab_size=vocab_size, causal=causal, **params)
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear) or not isinstance(getattr(model, "embed", None), nn.Embedding):
        raise ParameterError(role, f"{role} {kind!r} has no `embed` (nn.Embedding) and `head` (nn.Linear) layers; "
                                   "an encoder or decoder is read below its output head")
    model.head = nn.Identity()
    return model, head.in_features


def _own(kind: str) -> bool:
    return registry.architectures.entry(kind).builtin


def _built_on_meta(cls: type[EncoderDecoder], params: dict[str, Any]) -> None:
    """Build ``cls`` on the meta device (no memory), each depth at most 1: what its constructor refuses
    (the bridge, the placement, a width the heads do not divide) is refused the same way at the door.
    A width the heads divide, and even, is built as 2 x heads: the rest of the checks do not read it, and
    a search over widths (match_params) builds once."""
    d, heads = params.get("d_model"), params.get("heads", 1)
    shape = {k: min(v, 1) if k in cls.depth_parameters and isinstance(v, int) else v for k, v in params.items()}
    if isinstance(d, int) and d % heads == 0 and d % 2 == 0:
        shape["d_model"] = 2 * heads
    try:
        _build(cls, tuple(sorted(shape.items())))
    except ParameterError as exc:
        if exc.name not in params:  # a preset's fixed composition (its `encoder`): the point as a whole
            raise ValueError(str(exc)) from None
        raise


@functools.lru_cache(maxsize=256)
def _build(cls: type[EncoderDecoder], params: tuple[tuple[str, Any], ...]) -> None:
    with torch.device("meta"):
        cls(vocab_size=2, causal=True, **dict(params))


@register_architecture("encoder_decoder")
class EncoderDecoder(Architecture):
    """An ``encoder`` (non-causal) and a ``decoder`` (causal) of registered families joined by a ``bridge``."""

    framing: ClassVar[str] = "encoder_decoder"
    # every parameter that counts layers: the memory estimate extrapolates each (archbench.execute.footprint)
    depth_parameters: ClassVar[tuple[str, ...]] = ("encoder_layers", "decoder_layers", "cross_layers")

    def __init__(
        self,
        vocab_size: int,
        causal: bool = True,
        encoder: str = "transformer",
        decoder: str = "transformer",
        bridge: Bridge = "cross_attention",
        d_model: PositiveInt = 64,
        encoder_layers: PositiveInt = 2,
        decoder_layers: PositiveInt = 2,
        heads: PositiveInt = 4,
        cross_layers: PositiveInt | None = None,
        bridge_positions: bool = False,
        cross_placement: Placement = "auto",
    ):
        super().__init__()
        if not causal:
            raise BadInput("an encoder-decoder's decoder generates left to right: causal must be true (the encoder "
                           "is bidirectional whatever it is); got causal=False")
        self.vocab_size, self.causal, self.kinds = vocab_size, True, (encoder, decoder)
        self.encoder, d_enc = part(encoder, "encoder", vocab_size, False, d_model, encoder_layers, heads)
        self.decoder, d_dec = part(decoder, "decoder", vocab_size, True, d_model, decoder_layers, heads)
        self.widths = (d_enc, d_dec)
        # the decoder's own tolerances (an FFT convolution's), for archbench.testing's checks
        self.decode_tolerance = max(Architecture.decode_tolerance, declared(self.decoder, "decode_tolerance"))
        self.causal_tolerance = declared(self.decoder, "causal_tolerance")
        self.bridge = BRIDGES[bridge](d_memory=d_enc, d=d_dec, heads=heads, layers=cross_layers,
                                      positions=bridge_positions, placement=cross_placement, encoder=self.encoder,
                                      decoder=self.decoder, encoder_kind=encoder, decoder_kind=decoder)
        self.head = nn.Linear(d_dec, vocab_size)

    @classmethod
    def check_params(cls, p: dict[str, Any]) -> None:
        """At the door: each half a registered one-sequence architecture that takes its parameters; then,
        where both halves are archbench's own (a plugin's code runs only where its points run), the
        model built on the meta device, so the bridge, cross_placement and the heads are checked too."""
        for role in ("encoder", "decoder"):
            if role in p:
                half_params(p[role], role, p["d_model"], p[f"{role}_layers"], p["heads"])
        if all(_own(p[role]) for role in ("encoder", "decoder") if role in p):
            _built_on_meta(cls, p)

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # (B, S), (B, T) token ids
        return self.decode(self.encode(source), target)                              # (B, T, V)

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        return self.encoder(source)                                   # (B, S, d_enc)

    def decode(self, memory: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The teacher-forced decoder on ``target`` (B, T), reading the encoder's ``memory``: (B, T, V)."""
        if self.bridge.name == "final_state":
            h, _ = self.decoder.prefill(target, DecodeState(self.bridge.initial(memory)))   # (B, T, d_dec)
            return self.head(h)
        read = self.bridge.read(memory)
        h = self.decoder(target, **self.bridge.inside(read, 0))                          # (B, T, d_dec)
        return self.head(self.bridge.after(h, read, 0))

    def init_state(self, batch: int, capacity: int, source: torch.Tensor | None = None) -> Seq2SeqState:
        """Encode ``source`` (B, S) and start decoding: room for ``capacity`` target tokens."""
        if source is None:
            raise ValueError("an encoder-decoder decodes from a source: init_state(batch, capacity, source=<(B, S) "
                             "token ids>)")
        memory = self.encode(source)
        if self.bridge.name == "final_state":
            return Seq2SeqState(DecodeState(self.bridge.initial(memory)), (), source.shape[1])
        return Seq2SeqState(self.decoder.init_state(batch, capacity), self.bridge.read(memory), source.shape[1])

    def prefill(self, tokens: torch.Tensor, state: Seq2SeqState) -> tuple[torch.Tensor, Seq2SeqState]:
        inside = self.bridge.inside(state.memory, state.length)
        h, decoder = self.decoder.prefill(tokens, state.decoder, **inside)         # (B, P, d_dec)
        logits = self.head(self.bridge.after(h, state.memory, state.length))       # (B, P, V)
        return logits, dataclasses.replace(state, decoder=decoder, length=state.length + tokens.shape[1])

    def step(self, token: torch.Tensor, state: Seq2SeqState) -> tuple[torch.Tensor, Seq2SeqState]:
        inside = self.bridge.inside(state.memory, state.length)
        h, decoder = self.decoder.step(token, state.decoder, **inside)             # (B, d_dec)
        logits = self.head(self.bridge.after(h[:, None], state.memory, state.length))[:, 0]  # (B, V)
        return logits, dataclasses.replace(state, decoder=decoder, length=state.length + 1)

    def receptive_field(self, seq_len: int) -> int:
        raise NotImplementedError  # two sequences: the decoder's output t sees the whole source and target <= t

    def encoder_flops(self, batch: int, source: int) -> int:
        return self.encoder.flops(batch, source) - head_flops(batch, source, self.widths[0], self.vocab_size)

    def decoder_flops(self, batch: int, target: int, source: int) -> int:
        """The decoder pass: the decoder's layers, the bridge and the head, on a memory already encoded."""
        d = self.widths[1]
        own = self.decoder.flops(batch, target) - head_flops(batch, target, d, self.vocab_size)
        return own + self.bridge.flops(batch, source, target) + head_flops(batch, target, d, self.vocab_size)

    def flops(self, batch: int, seq_len: int, target_len: int | None = None) -> int:
        """Forward FLOPs of a source of ``seq_len`` tokens and a target of ``target_len`` (default: as long)."""
        target = seq_len if target_len is None else target_len
        return self.encoder_flops(batch, seq_len) + self.decoder_flops(batch, target, seq_len)

    def uncounted_flops(self, batch: int, seq_len: int, target_len: int | None = None) -> int:
        target = seq_len if target_len is None else target_len
        return sum(int(declared(p, "uncounted_flops")(batch, n))
                   for p, n in ((self.encoder, seq_len), (self.decoder, target)))

    def decode_flops(self, batch: int, context: int, source_len: int | None = None) -> int:
        """One decode step at ``context`` target tokens, against a source of ``source_len`` (default: context)."""
        source = context if source_len is None else source_len
        step = getattr(self.bridge, "step_flops", lambda b, s: 0)(batch, source)
        return self.decoder.decode_flops(batch, context) + step  # the decoder's head stands in for ours


def greedy_translate(model: nn.Module, source: torch.Tensor, start: torch.Tensor, length: int) -> torch.Tensor:
    """Greedy decoding of ``length`` tokens (B, length) from ``source`` (B, S), the first step reading the
    ``start`` tokens (B,): encode once, then each token from the incremental state."""
    state = model.init_state(source.shape[0], length, source=source)
    logits, state = model.prefill(start[:, None], state)
    token = logits[:, -1].argmax(-1)
    out = [token]
    for _ in range(length - 1):
        logits, state = model.step(token, state)
        token = logits.argmax(-1)
        out.append(token)
    return torch.stack(out, 1)


__all__ = ["EncoderDecoder", "Seq2SeqState", "greedy_translate", "half_params", "part"]
