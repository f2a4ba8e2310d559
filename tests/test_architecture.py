"""The package's shape, read from its source with `ast`: no import cycle, no import upwards through the layers
(docs/architecture.md), a short package root, and the settings object kept to the modules that plan a run."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "srcnet_sim"
# Lowest first: a module may import from its own layer or below, never above.
LAYERS = (
    ("errors", "constants", "progress", "sizing"),
    ("fs", "config"),
    ("sky", "instrument"),
    ("simulate", "vis"),
    ("imaging", "products", "qa"),
    ("run",),
    ("ingest", "deploy", "cli", "workflows"),
)
ROOT_MODULES = {"cli", "config", "constants", "errors", "progress", "sizing"}
# The modules that may hold the Settings object: the command line, the settings themselves, the plan that
# resolves them, the pipeline that starts from them, the resumable state (which compares them), the Kubernetes
# manifest (which writes them as environment variables) and the sidecar probe (which names them in errors).
SETTINGS_HOLDERS = {"srcnet_sim.cli", "srcnet_sim.config", "srcnet_sim.run.plan", "srcnet_sim.run.pipeline",
                    "srcnet_sim.run.resume", "srcnet_sim.deploy.k8s", "srcnet_sim.products.sidecar_probe"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of srcnet_sim that an imported name lives in (a module, or a name inside one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the srcnet_sim modules it imports (at any depth of its code, lazy imports included)."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                target = _resolve(name) if name.startswith("srcnet_sim") else None
                if target and target != module and not module.startswith(target + "."):  # a parent package
                    targets.add(target)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # the package itself: its version
    for number, names in enumerate(LAYERS):
        if parts[1] in names:
            return number
    raise AssertionError(f"{module} is in no layer of tests/test_architecture.py and docs/architecture.md")


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_nothing_imports_upwards():
    upwards = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
               for m, targets in sorted(import_graph().items()) for t in sorted(targets) if layer(t) > layer(m)]
    assert upwards == []


def test_package_root_holds_only_the_interfaces_and_the_shared_basics():
    root = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert root == ROOT_MODULES


def test_settings_stay_with_the_modules_that_plan_a_run():
    holders = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        imports_settings = any(isinstance(n, ast.ImportFrom) and any(a.name == "Settings" for a in n.names)
                               for n in ast.walk(tree))
        takes_settings = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                             and "settings" in {a.arg for a in n.args.args + n.args.kwonlyargs}
                             for n in ast.walk(tree))
        if imports_settings or takes_settings:
            holders.add(module)
    assert holders <= SETTINGS_HOLDERS, sorted(holders - SETTINGS_HOLDERS)
