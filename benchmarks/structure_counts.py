"""Structure counts of a segwise tree (issue 24): imports that point up a floor, long functions,
large files, lines in ``instance/``. Static (``ast``), with the floors of
``tests/test_package_order.py`` applied to the tree given (packages the floors do not name count
as the top floor).

    python benchmarks/structure_counts.py            # this checkout
    python benchmarks/structure_counts.py /tmp/old   # another checkout (e.g. a git worktree)

Prints JSON.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _order_test():
    spec = importlib.util.spec_from_file_location(
        "_package_order", HERE / "tests" / "test_package_order.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _functions(src: Path) -> list[tuple[int, int, str]]:
    """``(lines, lines without the docstring, "file:name")`` of every function."""
    out = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                first = node.body[0] if node.body else None
                doc = (first.end_lineno - first.lineno + 1 if isinstance(first, ast.Expr)
                       and isinstance(first.value, ast.Constant)
                       and isinstance(first.value.value, str) else 0)
                out.append((lines, lines - doc, f"{path.relative_to(src)}:{node.name}"))
    return out


def counts(root: Path) -> dict:
    src = root / "src" / "segwise"
    order = _order_test()
    order._cycles.SRC = root / "src"  # the import graph of the tree given
    graph = order._cycles.import_graph()
    floors = order._floor_of()
    for module in graph:  # packages the floors do not name: the top floor
        floors.setdefault(order._package(module), -1)
    functions = _functions(src)
    files = {str(p.relative_to(src)): len(p.read_text().splitlines()) for p in src.rglob("*.py")}
    return {
        "root": str(root),
        "upward_imports": order.upward_imports(graph, floors),
        "functions_60_lines": len([f for f in functions if f[0] >= 60]),
        "functions_60_lines_without_docstring": len([f for f in functions if f[1] >= 60]),
        "longest_functions": sorted(functions, reverse=True)[:5],
        "files_400_lines": {k: v for k, v in sorted(files.items()) if v >= 400},
        "lines_instance": sum(v for k, v in files.items() if k.startswith("instance/")),
        "lines_total": sum(files.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(HERE), help="a segwise checkout")
    args = parser.parse_args()
    result = counts(Path(args.root).resolve())
    result["upward_imports_count"] = len(result["upward_imports"])
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
