"""Built-in metrics; importing this package registers them."""
from archbench.metrics import (  # noqa: F401  (registration)
    accuracy,
    flops,
    generation,
    graph,
    implementation,
    instructions,
    latency,
    memory,
    receptive_field,
    size,
)
from archbench.metrics.base import Context, Metric, Row

__all__ = ["Context", "Metric", "Row"]
