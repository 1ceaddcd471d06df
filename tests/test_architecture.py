"""The arrows between packages and modules, read from the source (``ast``), not from a running import.

``docs/architecture.md`` draws them: ``service`` never imports ``workers`` (the Celery backend is found
through an entry point, see ``service/composition.py``), no two top-level packages import each other, and
no module imports itself through others. Every import counts, also one inside a function or under
``TYPE_CHECKING``: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Top-level packages and where their sources lie (the client is a package of its own under client/).
PACKAGES = {"mixing": ROOT / "mixing", "service": ROOT / "service", "workers": ROOT / "workers",
            "migrations": ROOT / "migrations", "runtables": ROOT / "runtables",
            "mixopt_client": ROOT / "client" / "mixopt_client"}
#: Allowed arrows between top-level packages (anything else is a finding).
ALLOWED = {
    "mixing": set(),
    "mixopt_client": set(),
    "runtables": {"mixopt_client"},
    "migrations": set(),
    "service": {"mixing", "migrations", "runtables", "mixopt_client"},
    "workers": {"service", "mixing"},
}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES`."""
    out = {}
    for top, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The modules of :func:`modules` that ``name`` imports: ``from a import b`` counts as ``a.b`` when that
    is a module, else as ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a package counts as its deepest module
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imported(name, path, known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def test_service_never_imports_workers() -> None:
    offenders = sorted(f"{m} -> {t}" for m, targets in graph().items() if top(m) == "service"
                       for t in targets if top(t) == "workers")
    assert offenders == []


def test_packages_import_only_what_the_layering_allows() -> None:
    offenders = sorted(f"{m} -> {t}" for m, targets in graph().items() for t in targets
                       if top(t) != top(m) and top(t) not in ALLOWED[top(m)])
    assert offenders == []


def test_no_cycle_between_top_level_packages() -> None:
    arrows: dict[str, set[str]] = defaultdict(set)
    for m, targets in graph().items():
        arrows[top(m)].update(top(t) for t in targets if top(t) != top(m))
    assert cycles(arrows) == []


def test_no_cycle_between_modules() -> None:
    assert cycles(graph()) == []


def test_the_checks_see_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
