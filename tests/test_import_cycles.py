"""No import cycle inside ``src/segwise``, function-level imports included (static, with ``ast``).

A module ``a`` depends on ``b`` when ``a`` imports ``b`` or a name from it anywhere (top level,
inside a function, under ``TYPE_CHECKING``), and on a module named in an ``"pkg.mod:name"``
import string (the explicit registries' form). A package's ``__init__`` counts as the package;
a submodule's use of its own package (``from segwise.data import X`` inside ``segwise.data``)
is not counted, since Python imports the package first in any case. Any strongly connected
group of more than one module is a cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
_IMPORT_STRING = re.compile(r"^(segwise(?:\.\w+)+):\w+$")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "segwise").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` (a module or ``module.attr``) lies in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = _IMPORT_STRING.match(node.value)
                targets = [match.group(1)] if match else []
            for t in targets:
                dep = _resolve(t, modules)
                if dep is not None and dep != mod and not mod.startswith(dep + "."):
                    graph[mod].add(dep)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    group.append(m)
                    if m == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_imports_and_import_strings():
    graph = import_graph()
    # function-level: fit()'s set-up imports segwise.data inside start_run
    assert "segwise.data" in graph["segwise.engine.run_start"]
    # import string in an explicit registry table (registry.py never imports it directly)
    assert "segwise.engine.instance_adapter" in graph["segwise.engine.registry"]


def test_no_import_cycle_inside_segwise():
    found = cycles(import_graph())
    assert not found, "import cycles (each line one strongly connected group):\n" + "\n".join(
        " <-> ".join(group) for group in found)
