import pytest

from archbench import registry
from archbench.errors import BadInput
from archbench.registry import Registry


def test_register_get_and_list():
    reg = Registry("widget")

    @reg.register("b")
    class B: ...

    reg.add("a", object())
    assert reg.get("b") is B
    assert reg.names() == ["a", "b"] and len(reg) == 2 and "a" in reg
    assert reg.entry("b").source == __name__


def test_duplicate_name_is_refused():
    reg = Registry("widget")
    reg.add("x", 1)
    with pytest.raises(BadInput, match="already registered"):
        reg.add("x", 2)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(BadInput) as exc:
        registry.architectures.get("lstn")
    known = ", ".join(registry.architectures.names())
    assert str(exc.value) == f"unknown architecture 'lstn'; did you mean 'lstm'? known: {known}"
    assert {"lstm", "tcn", "transformer"} <= set(registry.architectures.names())
    with pytest.raises(BadInput) as exc:
        registry.metrics.get("zzz")
    assert str(exc.value) == "unknown metric 'zzz'; known: " + ", ".join(registry.metrics.names())


def test_builtins_are_registered_through_the_public_decorators():
    import archbench

    assert archbench.register_architecture.__self__ is registry.architectures
    assert archbench.register_task.__self__ is registry.tasks
    assert {"lstm", "tcn", "transformer"} <= set(registry.architectures.names())
    assert {"latency", "peak_memory"} <= set(registry.metrics.names())
