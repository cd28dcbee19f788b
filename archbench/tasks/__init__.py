"""Built-in tasks; importing this package registers them."""
from archbench.tasks import (  # noqa: F401  (registration)
    adding,
    addition,
    context_free,
    context_sensitive,
    copy_memory,
    mqar,
    regular,
    reverse,
    selective_copy,
    sort,
    uniform,
    word_problem,
)
from archbench.tasks.base import Baseline, Batch, Task
from archbench.tasks.lengths import build_task  # the length protocol around base.build_task

__all__ = ["Baseline", "Batch", "Task", "build_task"]
