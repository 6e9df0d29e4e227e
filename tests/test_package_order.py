"""Packages form floors, and every import points down a floor (STYLE.md, "second review").

The floors are written once, here, top to bottom. A module of one package may import a module
of another only when that package stands on a lower floor: at module level, inside a function,
under ``TYPE_CHECKING``, or as a ``"pkg.mod:name"`` import string (an explicit registry's form),
all alike, since a function-local import is still an import. Packages on one floor are
siblings and import nothing from each other. ``segwise/__init__.py`` (the front door) resolves
its names lazily from any floor and is not a floor itself. The import graph is the one the cycle
test reads (``tests/test_import_cycles.py``, static, with ``ast``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "_import_cycles", Path(__file__).with_name("test_import_cycles.py"))
_cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cycles)
import_graph = _cycles.import_graph

#: top to bottom; a package imports only from floors below its own
FLOORS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("api",),
    ("engine", "inference"),  # training and serving: neither needs the other
    ("runs",),
    ("metrics",),
    ("instance",),
    ("inferers", "losses", "data", "viz"),
    ("models",),
    ("labels",),
    ("enums", "errors", "notices", "_validation", "_lazy"),
)


def _floor_of() -> dict[str, int]:
    return {pkg: level for level, floor in enumerate(FLOORS) for pkg in floor}


def _package(module: str) -> str:
    """``segwise.engine.trainer`` -> ``engine``; ``segwise`` (the front door) -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(graph: dict[str, set[str]], floors: dict[str, int]) -> list[str]:
    """``"a -> b"`` for every import from a package to one on its own floor or above."""
    found = []
    for module, deps in sorted(graph.items()):
        src = _package(module)
        if not src:
            continue
        for dep in sorted(deps):
            dst = _package(dep)
            if dst and dst != src and floors[dst] <= floors[src]:
                found.append(f"{module} ({src}, floor {floors[src]}) -> {dep} "
                             f"({dst}, floor {floors[dst]})")
    return found


def test_every_package_has_a_floor():
    graph = import_graph()
    packages = {_package(m) for m in graph} - {""}
    assert packages <= set(_floor_of()), (
        f"packages without a floor in FLOORS: {sorted(packages - set(_floor_of()))}")
    assert set(_floor_of()) <= packages, (
        f"FLOORS names packages that do not exist: {sorted(set(_floor_of()) - packages)}")


def test_the_check_finds_upward_and_sibling_imports():
    floors = {"top": 0, "mid": 1, "side": 1, "low": 2}
    graph = {
        "segwise.mid.a": {"segwise.low.x", "segwise.top.y"},  # up
        "segwise.mid.b": {"segwise.side.z"},  # sibling
        "segwise.low.x": set(),
        "segwise": {"segwise.top.y"},  # the front door may point anywhere
    }
    found = upward_imports(graph, floors)
    assert [line.split(" ")[0] for line in found] == ["segwise.mid.a", "segwise.mid.b"]
    assert upward_imports({"segwise.top.y": {"segwise.low.x"}}, floors) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # a function-local import (inside build_model_from_checkpoint) is in the graph
    assert "segwise.runs.builders" in graph["segwise.runs.checkpoint"]


def test_no_package_imports_upward():
    found = upward_imports(import_graph(), _floor_of())
    assert not found, ("imports that point up a floor (move the thing down instead of "
                       "hiding the import):\n" + "\n".join(found))
