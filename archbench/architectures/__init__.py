"""Built-in architectures; importing this package registers them."""
from archbench.architectures import lstm, tcn, transformer  # noqa: F401  (registration)
from archbench.architectures.base import Architecture, build_architecture

__all__ = ["Architecture", "build_architecture"]
