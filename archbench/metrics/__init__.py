"""Built-in metrics; importing this package registers them."""
from archbench.metrics import accuracy, flops, graph, latency, memory, receptive_field  # noqa: F401  (registration)
from archbench.metrics.base import Context, Metric, Row

__all__ = ["Context", "Metric", "Row"]
