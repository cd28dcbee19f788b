"""A test-only architecture registered on import, for a suite's ``plugins:`` (tests/test_orphans.py):
``faulty.Hangs``, whose forward never returns and blocks the in-process watchdog.

    plugins: [plugins.hangs]        # PYTHONPATH=tests, archbench run --allow-plugins
"""
from __future__ import annotations

from archbench.registry import register_architecture
from plugins.faulty import Hangs


@register_architecture("orphan_hangs")
class OrphanHangs(Hangs):
    """``faulty.Hangs``, registered when this module is imported."""
