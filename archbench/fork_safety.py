"""Whether this process may fork a child that goes on with this process's objects (a resident
worker with torch imported, a figure half drawn), instead of starting a fresh interpreter.

    if fork_is_safe(): pid = os.fork()
"""
from __future__ import annotations

import os
import sys
import threading


def fork_is_safe() -> bool:
    """One thread (a lock held by another would stay held in the child for ever) and no CUDA context
    (a child cannot use its parent's)."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    torch = sys.modules.get("torch")
    return torch is None or not torch.cuda.is_initialized()
