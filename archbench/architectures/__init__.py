"""Built-in architectures; importing this package registers them."""
from archbench.architectures import (  # noqa: F401  (registration)
    gru,
    linear_attention,
    local_attention,
    lstm,
    rnn,
    ssm,
    tcn,
    transformer,
)
from archbench.architectures.base import Architecture, build_architecture

__all__ = ["Architecture", "build_architecture"]
