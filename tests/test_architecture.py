"""The package's layers: no import circle, no import upward, no private name across modules.

The layer table is the architecture map of ``docs/architecture.md`` in code form. A module
may import modules of its own layer or below; importing a module above its layer (even
lazily, inside a function) is allowed only where :data:`LAZY_UPWARD` names it with the
reason. A module-level import graph with a circle fails, and so does ``from m import _x``
between two modules of the package (``_x`` is private to ``m``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "latent_em"

#: the layers, bottom (0) to top; a dotted prefix covers its submodules
LAYERS: dict[str, int] = {
    # 0: values and contracts, no latent_em imports above them
    "latent_em._tree": 0,
    "latent_em._validation": 0,
    "latent_em._registry": 0,
    "latent_em._version": 0,
    "latent_em.exceptions": 0,
    "latent_em.constraints": 0,
    "latent_em.protocols": 0,
    "latent_em.data": 0,
    "latent_em.datasets": 0,
    "latent_em.compiled": 0,
    "latent_em.hmm_kernels": 0,
    # 1: the posterior over z and log p(x_n), for any model; the result record
    "latent_em.posteriors": 1,
    "latent_em.result": 1,
    # 2: the EM map (one E-pass, the M-step chosen once) and the built-in models
    "latent_em.numerical_mstep": 2,
    "latent_em.em_map": 2,
    "latent_em.models": 2,
    "latent_em.components": 2,
    "latent_em.composite": 2,
    "latent_em.hmm": 2,
    # 3: SQUAREM, a user of the EM map beside the driver
    "latent_em.acceleration": 3,
    # 4: the driver
    "latent_em.em": 4,
    # 5: saving and loading (finds classes through the registry)
    "latent_em.io": 5,
    # 6: what users call on fitted models
    "latent_em.estimators": 6,
    "latent_em.selection": 6,
    "latent_em.uncertainty": 6,
    "latent_em.checking": 6,
    "latent_em.plotting": 6,
    # 7: bridges to other libraries, the command line, the package's front door
    "latent_em.bridges": 7,
    "latent_em.cli": 7,
    "latent_em.__main__": 7,
    "latent_em": 7,
}

#: (importer, imported): upward imports made lazily inside a function, with the reason
#: (none today: EMResult.save/load reach io through a hook that io installs)
LAZY_UPWARD: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    best = None
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    if best is None:
        raise AssertionError(f"{module} has no layer in LAYERS; add it to the table")
    return best[1]


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(modules: dict[str, Path]):
    """Yield ``(importer, imported, names, lazy, line)`` for every latent_em import."""
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        lazy_nodes: set[int] = set()
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy_nodes.update(id(n) for n in ast.walk(fn))
        for node in ast.walk(tree):
            lazy = id(node) in lazy_nodes
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("latent_em"):
                        yield name, alias.name, [], lazy, node.lineno
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_package, node)
                if not target.startswith("latent_em"):
                    continue
                names = [a.name for a in node.names]
                # `from . import x` imports the submodule x when there is one
                subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
                if subs:
                    for sub in subs:
                        yield name, sub, [], lazy, node.lineno
                    rest = [n for n in names if f"{target}.{n}" not in modules]
                    if rest:
                        yield name, target, rest, lazy, node.lineno
                else:
                    yield name, target, names, lazy, node.lineno


def test_every_module_has_a_layer():
    for name in _modules():
        _layer(name)


def test_no_module_imports_above_its_layer():
    modules = _modules()
    bad = []
    for importer, imported, _, lazy, line in _imports(modules):
        if _layer(imported) <= _layer(importer):
            continue
        if lazy and (importer, imported) in LAZY_UPWARD:
            continue
        bad.append(
            f"{importer}:{line} imports {imported} (layer {_layer(importer)} -> "
            f"{_layer(imported)}{', lazily' if lazy else ''})"
        )
    assert not bad, "imports above the importer's layer:\n" + "\n".join(bad)


def test_no_private_name_is_imported_from_another_module():
    bad = [
        f"{importer}:{line} imports {n} from {imported}"
        for importer, imported, names, _, line in _imports(_modules())
        for n in names
        if n.startswith("_") and n not in ("__version__", "__all__") and imported != importer
    ]
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_import_graph_has_no_circle():
    """No circle, counting imports made inside functions too."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for importer, imported, _, _, _ in _imports(modules):
        if imported == importer or imported not in modules:
            continue
        graph[importer].add(imported)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_each_module_imports_alone():
    """Each module imports in a fresh package state (not only after its neighbours)."""
    code = (
        "import importlib, sys\n"
        # __main__ runs the command line when imported
        f"for m in {sorted(m for m in _modules() if not m.endswith('__main__'))!r}:\n"
        "    for k in [k for k in sys.modules if k == 'latent_em' or k.startswith('latent_em.')]:\n"
        "        del sys.modules[k]\n"
        "    importlib.import_module(m)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
