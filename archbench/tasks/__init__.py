"""Built-in tasks; importing this package registers them."""
from archbench.tasks import uniform  # noqa: F401  (registration)
from archbench.tasks.base import Baseline, Batch, Task

__all__ = ["Baseline", "Batch", "Task"]
