"""archbench: measure why self-attention replaced RNNs and CNNs.

    import archbench
    suite = archbench.load_suite("suites/quick.yaml")
    points = archbench.expand(suite)
    model = archbench.build_architecture("tcn", vocab_size=32, causal=True, levels=4)
    m = archbench.measure(lambda: model(x), device="cpu")
    df = archbench.load_results("results/quick/<stamp>")
"""
__version__ = "0.1.0"

from archbench.registry import register_architecture, register_metric, register_task  # noqa: E402
from archbench import architectures, metrics, tasks  # noqa: E402,F401  (registers the built-ins)
from archbench.architectures.base import Architecture, build_architecture  # noqa: E402
from archbench.config import Suite, load_suite  # noqa: E402
from archbench.errors import BadInput  # noqa: E402
from archbench.plan import Point, expand  # noqa: E402
from archbench.results import load_results  # noqa: E402
from archbench.timing import Measurement, StopRule, measure  # noqa: E402

__all__ = [
    "Architecture", "BadInput", "Measurement", "Point", "StopRule", "Suite",
    "build_architecture", "expand", "load_results", "load_suite", "measure",
    "register_architecture", "register_metric", "register_task",
]
