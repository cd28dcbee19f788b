"""The built-in encoder-decoders: each family's classic pairing, as presets of ``encoder_decoder``.

    archbench run suites/seq2seq.yaml      # all four on reverse, sort, copy_memory and addition

- ``transformer_seq2seq``: Vaswani et al. (2017): a bidirectional Transformer encoder, a causal one
  decoding whose every layer is self-attention, cross-attention to the encoder, feed-forward.
- ``lstm_seq2seq``: Sutskever et al. (2014) / Cho et al. (2014): a bidirectional LSTM encoder whose
  last states start an LSTM decoder; the source passes through one fixed-size state.
- ``lstm_attention_seq2seq``: the same decoder reading every encoder state through attention
  (Luong et al. 2015's global attention; Bahdanau et al. 2015).
- ``tcn_attention_seq2seq``: ConvS2S-like (Gehring et al. 2017): a centred dilated TCN encoder, a causal
  TCN decoder attending to the encoder after every level, with sinusoidal positions on the memory
  and the queries (ConvS2S adds position embeddings, which convolutions need to tell where they are).
"""
from __future__ import annotations

from archbench.architectures.encoder_decoder import EncoderDecoder
from archbench.parameters import PositiveInt
from archbench.registry import register_architecture


@register_architecture("transformer_seq2seq")
class TransformerSeq2Seq(EncoderDecoder):
    """Transformer encoder -> Transformer decoder, cross-attention inside each decoder layer (Vaswani et al.)."""

    depth_parameters = ("layers",)

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 64, layers: PositiveInt = 2,
                 heads: PositiveInt = 4):
        super().__init__(vocab_size, causal, "transformer", "transformer", "cross_attention", d_model, layers, layers,
                         heads, cross_placement="per_layer")


@register_architecture("lstm_seq2seq")
class LSTMSeq2Seq(EncoderDecoder):
    """BiLSTM encoder -> LSTM decoder started from the encoder's final states (Sutskever et al.)."""

    depth_parameters = ("layers",)

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 64, layers: PositiveInt = 1):
        super().__init__(vocab_size, causal, "lstm", "lstm", "final_state", d_model, layers, layers)


@register_architecture("lstm_attention_seq2seq")
class LSTMAttentionSeq2Seq(EncoderDecoder):
    """BiLSTM encoder -> LSTM decoder with attention over the encoder's states on top (Luong et al.)."""

    depth_parameters = ("layers", "cross_layers")

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 64, layers: PositiveInt = 1,
                 heads: PositiveInt = 1, cross_layers: PositiveInt = 1):
        super().__init__(vocab_size, causal, "lstm", "lstm", "cross_attention", d_model, layers, layers, heads,
                         cross_layers, cross_placement="on_top")


@register_architecture("tcn_attention_seq2seq")
class TCNAttentionSeq2Seq(EncoderDecoder):
    """Centred TCN encoder -> causal TCN decoder attending to the encoder after every level (ConvS2S-like)."""

    depth_parameters = ("levels",)

    def __init__(self, vocab_size: int, causal: bool = True, d_model: PositiveInt = 64, levels: PositiveInt = 4,
                 heads: PositiveInt = 1):
        super().__init__(vocab_size, causal, "tcn", "tcn", "cross_attention", d_model, levels, levels, heads,
                         bridge_positions=True, cross_placement="per_layer")
