"""The architecture contract every registered model follows.

    model = archbench.build_architecture("tcn", vocab_size=16, causal=True, levels=4)
    logits = model(tokens)               # (B, T) int64 -> (B, T, V)
    model.receptive_field(seq_len=512)   # closed form, from the model's own parameters, at probe_position
    model.flops(batch=8, seq_len=512)    # analytic forward FLOPs, 2 per multiply-add

A causal architecture that can generate also implements incremental decoding
(archbench.architectures.decoding; docs/generation.md):

    state = model.init_state(batch=8, capacity=640)   # empty, room for 640 tokens
    logits, state = model.prefill(prompt, state)      # (B, P) -> (B, P, V), the state of P tokens
    logits, state = model.step(token, state)          # (B,) -> (B, V), the state of P + 1 tokens

FLOPs count the matrix products and convolutions only (the convention of
torch.utils.flop_counter): elementwise work, softmax and normalisation are left out.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pydantic import ValidationError
from torch import nn

from archbench import registry
from archbench.errors import BadInput
from archbench.parameters import VOCABULARY

# A hook into each layer of a model that exposes them (``layer_hook``): h = between(layer, h), h (B, T, D).
Between = Callable[[int, torch.Tensor], torch.Tensor] | None


class Architecture(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab_size); ``causal`` means output t sees inputs <= t."""

    causal: bool
    vocab_size: int
    # The parameter that counts layers (levels), for "layers needed to cover n"; None if there is none.
    depth_parameter: ClassVar[str | None] = None
    # Table 1 of Vaswani et al. (2017): the operation, and how its forward work and depth (the
    # critical path) grow with the length n, as exponents, and the maximum path length between
    # two positions; ``work_exponent_from`` is the n / d_model from which the work law holds
    # (attention's n^2 d overtakes its n d^2 projections only for n well above d). None: unknown.
    operation: ClassVar[str | None] = None
    work_exponent: ClassVar[float | None] = None
    depth_exponent: ClassVar[float | None] = None
    path_length_law: ClassVar[str | None] = None
    work_exponent_from: ClassVar[float] = 0.0
    # Generation (Table 1, generation): how the work of one decoded token and the bytes of the
    # decoding state grow with the context c, as exponents. None: unknown.
    decode_work_exponent: ClassVar[float | None] = None
    state_exponent: ClassVar[float | None] = None
    # The largest |stepped - full forward| logit difference check_decoding accepts (float32).
    decode_tolerance: ClassVar[float] = 1e-4
    # True if ``forward``, ``prefill`` and ``step`` take ``between=f`` and call h = f(i, h) inside each
    # layer i of ``self.blocks``, after its sequence mixing, h (B, T, D): how an encoder-decoder puts
    # cross-attention inside the decoder's layers (archbench.architectures.bridges).
    layer_hook: ClassVar[bool] = False
    # How the model reads a task: None, one token sequence (decoder-only when causal, a labeller when
    # not); "encoder_decoder", a source and a target (archbench.tasks.base, the framings).
    framing: ClassVar[str | None] = None
    # The largest change of an output before t, when input t changes, that the causality check accepts
    # (float32 rounding of an FFT, say); 0: none.
    causal_tolerance: ClassVar[float] = 0.0
    # A second width parameter match_params may choose when d_model alone cannot bring the parameter
    # count within the tolerance (archbench.suite.matching); None: d_model only.
    fine_width: ClassVar[str | None] = None

    @classmethod
    def laws(cls) -> dict[str, Any]:
        """The theoretical laws above, as plain data (for meta.json and table1.csv)."""
        return {"operation": cls.operation, "work_exponent": cls.work_exponent,
                "depth_exponent": cls.depth_exponent, "path_length_law": cls.path_length_law,
                "work_exponent_from": cls.work_exponent_from,
                "decode_work_exponent": cls.decode_work_exponent, "state_exponent": cls.state_exponent}

    def probe_position(self, seq_len: int) -> int:
        """The output position whose receptive field is reported: the last (causal) or the middle."""
        return seq_len - 1 if self.causal else seq_len // 2

    def receptive_field(self, seq_len: int) -> int:
        """Input positions that output ``probe_position(seq_len)`` depends on (closed form)."""
        raise NotImplementedError

    def whole_sequence(self, seq_len: int) -> int:
        """The field of a model that sees all it may: the prefix up to ``probe_position`` (causal), or
        all ``seq_len`` positions (a recurrence, attention, a kernel as long as the sequence)."""
        return seq_len if not self.causal else self.probe_position(seq_len) + 1

    def flops(self, batch: int, seq_len: int) -> int:
        """Analytic forward FLOPs (2 per multiply-add) of matrix products and convolutions."""
        raise NotImplementedError

    def init_state(self, batch: int, capacity: int) -> Any:
        """An empty decoding state for ``batch`` sequences, with room for ``capacity`` tokens where it
        grows (a key-value cache); on the model's device and dtype."""
        raise NotImplementedError

    def prefill(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Run a prompt (B, P) from ``init_state``: the full forward's logits (B, P, V) and the state
        holding the P tokens (the state passed in may be filled in place)."""
        raise NotImplementedError

    def step(self, token: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One token (B,) after the tokens ``state`` holds: logits (B, V) and the state one token on.
        The state passed in keeps its meaning: stepping from it again gives the same logits."""
        raise NotImplementedError

    def decode_flops(self, batch: int, context: int) -> int:
        """Analytic FLOPs of one ``step`` when the state holds ``context`` tokens (matrix products)."""
        raise NotImplementedError

    def uncounted_flops(self, batch: int, seq_len: int) -> int:
        """FLOPs of the forward that torch's FlopCounterMode cannot see (a fused cuDNN recurrence, an
        FFT), so that a test can hold ``flops`` against the counter: counter + uncounted == flops."""
        return 0

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_size(self, seq_len: int) -> int:
        """Numbers one sequence's state holds after ``seq_len`` tokens: what the model keeps to go on
        (a recurrence's hidden state, a convolution's buffer of its receptive field, attention's
        key-value cache of the ``seq_len`` tokens), comparable across architectures (Zoology's state
        size; a complex number counts as one). The built-ins give it in closed form; the default
        counts the elements of ``init_state(1, seq_len)``'s tensors, and is NotImplementedError for a
        model without one."""
        if type(self).init_state is Architecture.init_state:
            raise NotImplementedError(f"{type(self).__name__} declares no state_size and no init_state")
        return numbers(self.init_state(1, seq_len))


def numbers(state: Any) -> int:
    """Elements of the tensors a state holds (in tuples, lists, dicts and dataclasses, at any depth)."""
    if isinstance(state, torch.Tensor):
        return state.numel()
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        state = [getattr(state, f.name) for f in dataclasses.fields(state)]
    elif isinstance(state, dict):
        state = list(state.values())
    return sum(numbers(item) for item in state) if isinstance(state, (list, tuple)) else 0


def declared(obj: Any, name: str) -> Any:
    """What ``obj`` (a registered class or factory, or a built model) declares of the contract above, or
    the contract's default where it declares nothing (a plain nn.Module plugin, a preset's factory).
    The one place the contract's attributes are read with a fallback."""
    if name == "uncounted_flops" and not hasattr(obj, name):
        return lambda batch, seq_len: 0
    return getattr(obj, name, getattr(Architecture, name))


def head_flops(batch: int, seq_len: int, d_in: int, vocab: int) -> int:
    """The output projection shared by every built-in: (B, T, d_in) @ (d_in, V)."""
    return 2 * batch * seq_len * d_in * vocab


def build_architecture(kind: str, **params: Any) -> nn.Module:
    """Build a registered architecture by name: ``vocab_size`` and ``causal`` plus its own parameters."""
    factory = registry.architectures.get(kind)
    vocab_size = params.pop("vocab_size", None)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not 1 <= vocab_size <= VOCABULARY:
        raise BadInput(f"build_architecture({kind!r}): vocab_size={vocab_size!r}: give a whole number from 1 to "
                       f"{VOCABULARY}")
    causal = params.pop("causal", True)
    if not isinstance(causal, bool):
        raise BadInput(f"build_architecture({kind!r}): causal={causal!r}: give True or False")
    try:
        values = registry.architectures.validate(kind, params)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BadInput(f"{kind}.{where}: {err['msg']} (got {err.get('input')!r})") from None
    except ValueError as exc:  # a ParameterError names its parameter
        name = getattr(exc, "name", None)
        raise BadInput(f"{kind}.{name}: {exc}" if name else f"{kind}: {exc}") from None
    return factory(vocab_size=vocab_size, causal=causal, **values)
