"""The packages of mlcil import one way only (README.md, Layout): no package imports one that depends on it.

Every module under src/mlcil is parsed (``ast``, so imports inside functions count too, and nothing
is imported to check it) and each ``mlcil`` import becomes an edge between top-level packages
(``mlcil.learners.analytic`` -> ``learners``; ``errors.py`` and ``cli.py`` are packages of one module;
the top-level ``mlcil/__init__.py`` is ``mlcil``, the facade users import from).

The layers, bottom to top; a package may import its own modules and packages of lower layers only,
never one of its own layer or above:

    errors, version -> data, metrics -> decide -> protocols -> ridge, encoders -> engines -> learners -> bench
    -> serve -> mlcil (the facade) -> cli -> __main__

``decide`` holds pure functions on arrays (thresholds, calibration, the audit's scoring): the
wrapper learner ``Calibrated`` is in ``learners``, the audit of a stream in ``bench``. ``engines``
accumulate the ridge core's statistics and run encoders, so they sit below the learners that use
them. Nothing below the facade imports ``mlcil`` itself (``from mlcil import __version__`` included:
``mlcil.version`` holds it, at the bottom): the facade exports the learners, so that would be a cycle.

Inside a package, modules may import each other, but not in a cycle of imports that run at import time
(STYLE.md: "no import cycle between files").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mlcil"

LAYERS: list[set[str]] = [
    {"errors", "version"},
    {"data", "metrics"},
    {"decide"},
    {"protocols"},
    {"ridge", "encoders"},
    {"engines"},
    {"learners"},
    {"bench"},
    {"serve"},
    {"mlcil"},
    {"cli"},
    {"__main__"},
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}

#: (importing module, imported module) edges allowed for now, each for a stated reason; delete an entry
#: together with the code it allows (test_transitional_edges_still_exist fails on a stale entry).
TRANSITIONAL: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = ("mlcil",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """``mlcil.learners.base`` -> ``learners``; ``mlcil.cli`` -> ``cli``; ``mlcil`` -> ``mlcil``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mlcil"


def is_module(dotted: str) -> bool:
    """Is ``dotted`` (``mlcil.learners.calibrated``) a module or package under src/mlcil?"""
    rel = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    return (SRC / rel).is_dir() or (SRC / rel).with_suffix(".py").is_file()


def imports(path: Path, deferred: bool = True) -> list[tuple[int, str, str]]:
    """(line, imported mlcil module, the statement as written) for every mlcil import in ``path``,
    at any depth (functions, ``if TYPE_CHECKING:`` blocks, try/except); with ``deferred=False`` only
    those that run when the module is imported (not inside a function or an ``if TYPE_CHECKING:``)."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    later: set[int] = set()  # ids of import statements that do not run at import time
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            later.update(id(inner) for inner in ast.walk(node))
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):  # its else branch runs
            later.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    found = []
    for node in ast.walk(tree):
        if not deferred and id(node) in later:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mlcil":
                    found.append((node.lineno, alias.name, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "mlcil":
                continue
            names = ", ".join(alias.name for alias in node.names)
            text = f"from {'.' * node.level}{node.module or ''} import {names}"
            for alias in node.names:  # from mlcil import ridge (a package) / __version__ (the facade's attribute)
                target = f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base
                if target not in [t for line, t, _ in found if line == node.lineno]:
                    found.append((node.lineno, target, text))
    return found


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle of ``graph`` (node -> {successor: why}) as a closed path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def edges() -> list[tuple[str, str, int, str, str]]:
    """(importing module, imported module, line, statement, file) for every import between packages."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        for line, target, text in imports(path):
            if package_of(module) != package_of(target):
                out.append((module, target, line, text, str(path.relative_to(SRC.parent))))
    return out


def violations() -> list[str]:
    bad = []
    for module, target, line, text, file in edges():
        src, dst = package_of(module), package_of(target)
        if (module, target) in TRANSITIONAL:
            continue
        if src not in RANK or dst not in RANK:
            unknown = src if src not in RANK else dst
            bad.append(f"{file}:{line}: {text!r}: package {unknown!r} has no layer in tests/test_layers.py")
        elif RANK[dst] >= RANK[src]:
            where = "the same layer as" if RANK[dst] == RANK[src] else "a layer above"
            bad.append(f"{file}:{line}: {module} imports {target} ({text!r}): {dst!r} is in {where} {src!r}")
    return bad


def test_every_package_has_a_layer():
    packages = {package_of(module_name(p)) for p in SRC.rglob("*.py")}
    assert packages <= set(RANK), f"add {sorted(packages - set(RANK))} to LAYERS in tests/test_layers.py"


def test_packages_import_only_lower_layers():
    bad = violations()
    assert not bad, "imports against the package layers (README.md, Layout):\n" + "\n".join(bad)


def test_package_graph_is_acyclic():
    """Independent of the layer order: no cycle among packages (reported as one path, with the imports)."""
    graph: dict[str, dict[str, str]] = {}
    for module, target, line, text, file in edges():
        if (module, target) not in TRANSITIONAL:
            graph.setdefault(package_of(module), {}).setdefault(package_of(target), f"{file}:{line} {text!r}")
    cycle = find_cycle(graph)
    assert cycle is None, "package import cycle:\n" + "\n".join(
        f"{a} -> {b}: {graph[a][b]}" for a, b in zip(cycle, cycle[1:]))


def test_no_import_cycle_between_modules():
    """Modules (packages' __init__ included) whose imports at import time form a cycle import or not
    depending on which one is imported first; an import inside a function does not count."""
    graph: dict[str, dict[str, str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        module = module_name(path)
        for line, target, text in imports(path, deferred=False):
            if target != module:
                graph.setdefault(module, {}).setdefault(target, f"{path.relative_to(SRC.parent)}:{line} {text!r}")
    cycle = find_cycle(graph)
    assert cycle is None, "module import cycle:\n" + "\n".join(
        f"{a} -> {b}: {graph[a][b]}" for a, b in zip(cycle, cycle[1:]))


def test_transitional_edges_still_exist():
    present = {(module, target) for module, target, *_ in edges()}
    stale = [edge for edge in TRANSITIONAL if edge not in present]
    assert not stale, f"remove these from TRANSITIONAL in tests/test_layers.py, the imports are gone: {stale}"


def test_the_parser_sees_every_form_of_import(tmp_path):
    """Relative imports, ``from mlcil import <package>``, imports inside functions and the facade."""
    pkg = tmp_path / "mlcil"
    (pkg / "decide").mkdir(parents=True)
    (pkg / "learners").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "learners" / "__init__.py").write_text("")
    (pkg / "decide" / "__init__.py").write_text("from .calibration import fit\n")
    (pkg / "decide" / "calibration.py").write_text(
        "from mlcil import learners, __version__\n"
        "def f():\n    from ..learners import base\n    import mlcil.learners.base\n"
        "if TYPE_CHECKING:\n    from mlcil.decide import thresholds\nelse:\n    from mlcil.decide import calibration\n")
    global SRC
    saved, SRC = SRC, pkg
    try:
        found = {(target, text) for _, target, text in imports(pkg / "decide" / "calibration.py")}
        assert found == {("mlcil.learners", "from mlcil import learners, __version__"),
                         ("mlcil", "from mlcil import learners, __version__"),
                         ("mlcil.learners", "from ..learners import base"),
                         ("mlcil.learners.base", "import mlcil.learners.base"),
                         ("mlcil.decide", "from mlcil.decide import thresholds"),
                         ("mlcil.decide.calibration", "from mlcil.decide import calibration")}
        assert [t for _, t, _ in imports(pkg / "decide" / "__init__.py")] == ["mlcil.decide.calibration"]
        bad = violations()
        assert len(bad) == 4 and all("a layer above 'decide'" in line for line in bad), bad
        at_import = {t for _, t, _ in imports(pkg / "decide" / "calibration.py", deferred=False)}
        # those inside f() run only when it is called, the TYPE_CHECKING one never
        assert at_import == {"mlcil.learners", "mlcil", "mlcil.decide.calibration"}
    finally:
        SRC = saved


def test_find_cycle():
    assert find_cycle({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "", "c": ""}, "b": {"c": ""}}) is None
