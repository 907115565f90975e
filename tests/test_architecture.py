"""The package structure the architecture promises (docs/architecture.md): the import graph
of symgraph, codegen and frontends has no cycle, no module imports a project module inside a
function (a deliberate lazy import carries a ``# lazy: <reason>`` comment), and no source file
exceeds 600 lines.

The graph is read from the source with ``ast`` (every ``import`` statement, wherever it is,
except under ``if TYPE_CHECKING:``), so a cycle hidden in a function body counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("symgraph", "codegen", "frontends")
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
        or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str, path: Path):
    """(target module, line, is it inside a function or class body) for each project import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, nested: bool):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.ClassDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield from _targets(alias.name, [], child.lineno, nested)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = module.split(".")
                    package = parts if is_package else parts[:-1]
                    package = package[: len(package) - (child.level - 1)]
                    base = ".".join(package + ([child.module] if child.module else []))
                yield from _targets(base, [a.name for a in child.names], child.lineno, nested)
            yield from walk(child, inner)

    yield from walk(tree, False)


def _targets(base: str, names: list[str], line: int, nested: bool):
    subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
    for target in subs or ([base] if base in MODULES else []):
        yield target, line, nested


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, _ in _imports(module, path):
            if target != module:
                edges[module].add(target)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
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
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles between modules:\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_no_function_local_imports_of_project_modules():
    hidden = []
    for module, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, line, nested in _imports(module, path):
            if nested and "# lazy:" not in lines[line - 1]:
                hidden.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not hidden, ("imports inside functions (import at module level, or mark a "
                        "deliberate lazy import with '# lazy: <reason>'):\n" + "\n".join(hidden))


@pytest.mark.parametrize("package", PACKAGES)
def test_no_file_over_600_lines(package):
    long = [f"{p.relative_to(ROOT)}: {n} lines"
            for p in sorted((ROOT / package).rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)
