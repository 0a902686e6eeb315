"""The shape of the code: imports point one way, no cycles, few modules loose in sae_core/, and penalties
named only where a penalty is defined.

Read from the source (every import statement, also those inside functions and under TYPE_CHECKING), so a
deferred import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sae_core.penalties.registry import PENALTY_NAMES

ROOT = Path(__file__).resolve().parents[1]

LAYERS: tuple[tuple[str, ...], ...] = (
    ("sae_core.fields", "sae_core.tex", "sae_core.images", "sae_core.plugins"),
    ("sae_core.penalties",),
    ("sae_core.models",),
    ("sae_core.config",),
    ("sae_core.data",),
    ("sae_core.presets",),
    ("sae_core.train",),
    ("sae_core.store",),
    ("sae_core.sweep",),
    ("sae_core.analysis",),
    ("sae_core.figures",),
    ("sae_core.serve",),
    ("sae_core.cli", "sae_core.__main__"),
    ("pages",),
    ("app",),
)
"""Lowest first. A module may import its own package and anything in a lower row, nothing above it: the
maths (penalties, models) knows nothing of the config assembled from their specs, training knows nothing
of the files it is saved to, the figures nothing of the server, and only pages/ and app.py know Streamlit.
The README's layout section says the same in words."""
MAX_TOP_LEVEL_MODULES = 12
MAX_PLACES_NAMING_A_PENALTY = 3


def project_modules() -> dict[str, Path]:
    files = [*ROOT.glob("sae_core/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]
    out = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, by any import statement anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_of(module: str) -> int:
    if module == "sae_core":  # the package itself: its version, nothing else
        return 0
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: add it where it belongs")


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from sae_core.models import base\n")
    assert "sae_core.models.base" in imports_of("x", source, project_modules())


def test_no_import_cycles_counting_imports_inside_functions():
    assert cycles(import_graph()) == []


def test_imports_point_down_the_layers():
    wrong = [
        f"{source} -> {target}"
        for source, targets in import_graph().items()
        for target in targets
        if layer_of(target) > layer_of(source)
    ]
    assert wrong == []


def test_only_app_and_pages_import_streamlit():
    offenders = [
        name
        for name, path in project_modules().items()
        if not (name == "app" or name.startswith("pages"))
        and any(
            isinstance(node, ast.Import | ast.ImportFrom)
            and any(
                (a.name if isinstance(node, ast.Import) else (node.module or "")).startswith("streamlit")
                for a in node.names
            )
            for node in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert offenders == []


def test_few_modules_sit_directly_in_sae_core():
    loose = sorted(p.name for p in (ROOT / "sae_core").glob("*.py"))
    assert len(loose) <= MAX_TOP_LEVEL_MODULES, loose


def places_naming_a_penalty() -> dict[str, list[int]]:
    """File -> lines outside sae_core/penalties/ that name a registered penalty: a string literal equal to
    its name, or an import of its module. "none" is also the plain word (a URL's classroom=none, an axis
    "none"), so its literal is not counted; an import of its module is."""
    names = set(PENALTY_NAMES) - {"none"}
    modules = {f"sae_core.penalties.{n}" for n in PENALTY_NAMES}
    out: dict[str, list[int]] = {}
    for name, path in project_modules().items():
        if name.startswith("sae_core.penalties"):
            continue
        lines = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                lines.append(node.lineno)
            elif isinstance(node, ast.ImportFrom) and (
                node.module in modules
                or (node.module == "sae_core.penalties" and {a.name for a in node.names} & names)
            ):
                lines.append(node.lineno)
        if lines:
            out[str(path.relative_to(ROOT))] = sorted(lines)
    return out


def test_penalties_are_named_in_at_most_three_places_outside_their_package():
    places = places_naming_a_penalty()
    assert len(places) <= MAX_PLACES_NAMING_A_PENALTY, places


@pytest.mark.parametrize("prefixes", LAYERS)
def test_every_layer_exists(prefixes):
    modules = project_modules()
    assert any(m == p or m.startswith(p + ".") for p in prefixes for m in modules), prefixes
