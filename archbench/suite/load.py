"""Read a suite: YAML, then the schema, then its plugins, then every name checked by expanding.

    suite = archbench.load_suite("suites/quick.yaml")

Every failure is BadInput with one line naming the path to the bad value and what is allowed.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from archbench import registry
from archbench.errors import BadInput
from archbench.suite import MAX_POINTS
from archbench.suite.messages import describe_error
from archbench.suite.plan import expand
from archbench.suite.schema import Suite
from archbench.suite.yaml import read_yaml


def known_metrics() -> set[str]:
    """Metric names a ``compare:`` rule may name: every row a registered metric makes."""
    names = set()
    for entry in registry.metrics:
        names.add(entry.name)
        try:
            names |= {row[0] for row in entry.obj().produces()}
        except Exception:
            pass
    return names


def parse_suite(text: str, source: str = "<suite>", max_points: int | None = MAX_POINTS,
                allow_plugins: bool = False) -> Suite:
    """Validate suite text; raise BadInput with one line naming the bad key or value.

    A suite that expands to more than ``max_points`` points is refused (``None``: no limit; the
    CLI's ``--yes``). Its ``plugins:`` are Python code: imported only with ``allow_plugins``
    (``--allow-plugins``), or when an installed package declares them as entry points.
    """
    data = read_yaml(text, source)
    if data is None:
        raise BadInput(f"{source}: the suite is empty; it needs at least 'name' and 'experiments'")
    if not isinstance(data, dict):
        raise BadInput(f"{source}: a suite must be a mapping of keys, got a {type(data).__name__}")
    # top-level `x-...` keys hold YAML anchors for merge keys (`x-sweep: &s {...}`, then `<<: *s`)
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"{source}: {describe_error(exc, Suite)}") from None
    except RecursionError:
        raise BadInput(f"{source}: the suite is nested too deeply (or refers to itself)") from None
    suite._text = text
    trusted = registry.entry_point_modules() if suite.plugins and not allow_plugins else set()
    for i, module in enumerate(suite.plugins):
        if not allow_plugins and module not in trusted:
            raise BadInput(f"{source}: plugins[{i}]: {module!r} is Python code to import; archbench imports a "
                           "suite's plugins only when asked: pass --allow-plugins (allow_plugins=True), or "
                           "install it with an archbench entry point")
        try:
            registry.load_plugin(module)
        except BadInput as exc:
            raise BadInput(f"{source}: plugins[{i}]: {exc}") from None
    if suite.compare:
        known = known_metrics()
        for name in suite.compare:
            if name not in known:
                raise BadInput(f"{source}: compare: {registry.unknown_name_message('metric', name, known)}")
    expand(suite, source=source, max_points=max_points)  # names and parameters are checked by expanding
    return suite


def load_suite(path: str | Path, max_points: int | None = MAX_POINTS, allow_plugins: bool = False) -> Suite:
    """Read and validate a suite file (see ``archbench.suite.schema`` for the format).

    More than ``max_points`` points is refused unless ``max_points`` is None (``--yes``); its
    ``plugins:`` are imported only with ``allow_plugins`` (see ``parse_suite``).
    """
    path = Path(path)
    if not path.exists():
        raise BadInput(f"suite file {str(path)!r} does not exist")
    if not path.is_file():
        raise BadInput(f"suite {str(path)!r} is not a file; give the path of a .yaml suite")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start}); a suite is a YAML text file") from None
    except OSError as exc:  # unreadable: permissions, /proc/self/mem, a device
        raise BadInput(f"suite {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    suite = parse_suite(text, source=str(path), max_points=max_points, allow_plugins=allow_plugins)
    suite._path = str(path)
    return suite
