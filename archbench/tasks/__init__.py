"""Built-in tasks; importing this package registers them."""
from archbench.tasks import (  # noqa: F401  (registration)
    adding,
    addition,
    copy_memory,
    mqar,
    reverse,
    selective_copy,
    sort,
    uniform,
)
from archbench.tasks.base import Baseline, Batch, Task, build_task

__all__ = ["Baseline", "Batch", "Task", "build_task"]
