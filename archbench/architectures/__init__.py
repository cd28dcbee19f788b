"""Built-in architectures; importing this package registers them."""
from archbench.architectures import (  # noqa: F401  (registration)
    encoder_decoder,
    gru,
    linear_attention,
    local_attention,
    lstm,
    rnn,
    seq2seq,
    ssm,
    tcn,
    transformer,
)
from archbench.architectures.base import Architecture, build_architecture

__all__ = ["Architecture", "build_architecture"]
