"""The package's import graph, read with ``ast``, and the layering rule it must keep.

The folders are layers, bottom to top (``LAYERS``); a module imports only from its own layer or the
layers below it, and no chain of imports leads back to where it started. Every ``import`` counts,
function-level ones included; only ``if TYPE_CHECKING:`` blocks are skipped (they never run).

    python -m spectralkd_tutorial.tools.import_graph            # the layers, their modules and what each imports
    python -m spectralkd_tutorial.tools.import_graph --check    # exit 1 on a cycle or an upward import
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

LAYERS = ("common", "data", "analysis", "losses", "config", "models", "engine", "pipelines", "course", "cli",
          "tools")
LAYER_ROLES = {
    "common": "errors, atomic io, validated configs' base, input checks, device, processes, metrics, packaged results",
    "data": "intent data sets: upstream readers, the user's files, the hub, the embedded set, splits",
    "analysis": "capture hidden states, spectral profiles, layer selection (the strategy registry), statistics, plots",
    "losses": "logit KD and the feature losses (the loss registry), the combined loss",
    "config": "RunConfig's sections, TOML files, the named presets",
    "models": "loading teachers and students, student builders, tiny and offline models",
    "engine": "batching, fit and its callbacks, optimisation, evaluation, the teacher cache, the run store",
    "pipelines": "the steps, distil, the grid, the study, end to end, model cards, inference, serving",
    "course": "the course's helpers: Fourier and phasors, text views, the ViT chapter, widgets, exercises",
    "cli": "the spectralkd command: shared options, one module per group of commands, benchmarks",
    "tools": "maintenance of the notebooks and the repository (not the product)",
}


@dataclass
class ImportGraph:
    """Modules (dotted, relative to the package) and the package modules each one imports."""

    package: str
    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)  # "a -> b": b is no module of the package (a stale path)

    def layer(self, module: str) -> str:
        return module.split(".")[0]


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_block(node):
            stack.extend(node.orelse)  # the else branch runs
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if module else []
    if not is_package:
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def build_graph(package_dir: str | Path) -> ImportGraph:
    """Read every module under ``package_dir`` and resolve its imports of the package's own modules."""
    root = Path(package_dir)
    graph = ImportGraph(package=root.name)
    packages = set()
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            packages.add(".".join(parts))
        graph.modules[".".join(parts)] = path
    prefix = graph.package + "."
    for module, path in graph.modules.items():
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.startswith(prefix)]
                targets.update(name[len(prefix):] for name in names)
                continue
            absolute = _absolute(node, f"{graph.package}.{module}".rstrip("."), module in packages)
            if absolute != graph.package and not absolute.startswith(prefix):
                continue
            base = absolute[len(prefix):] if absolute != graph.package else ""
            if base and base not in graph.modules:
                graph.unresolved.append(f"{module} -> {base} (no such module)")
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}" if base else alias.name
                targets.add(child if child in graph.modules else base)
        graph.edges[module] = {t for t in targets if t in graph.modules and t != module}
    return graph


def upward_imports(graph: ImportGraph, layers: tuple[str, ...] = LAYERS) -> list[str]:
    """'a -> b' for every import from a lower layer into a higher one (or out of/into an unknown folder)."""
    problems = []
    for module, targets in sorted(graph.edges.items()):
        if module == "":
            continue  # the package's __init__: the public API, on top of everything
        here = graph.layer(module)
        for target in sorted(targets):
            there = graph.layer(target)
            if here not in layers or there not in layers:
                problems.append(f"{module} -> {target} (a module outside the layers {', '.join(layers)})")
            elif layers.index(there) > layers.index(here):
                problems.append(f"{module} -> {target} ({here} imports {there}, a layer above it)")
    return problems


def import_cycles(graph: ImportGraph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(start: str) -> None:  # iterative Tarjan: deep graphs do not hit the recursion limit
        work = [(start, iter(sorted(graph.edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
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
                        cycles.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.edges.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return sorted(cycles)


def describe(graph: ImportGraph, layers: tuple[str, ...] = LAYERS) -> str:
    """The layers from the top, each with its modules and the lower layers it imports."""
    lines = []
    for layer in reversed(layers):
        members = sorted(m for m in graph.modules if graph.layer(m) == layer)
        uses = sorted({graph.layer(t) for m in members for t in graph.edges[m]} - {layer},
                      key=layers.index)
        lines.append(f"{layer + '/':<11} {len(members):>3} modules  imports: {', '.join(uses) or '-'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 on a cycle or an upward import")
    args = parser.parse_args(argv)
    graph = build_graph(Path(__file__).resolve().parent.parent)
    print(describe(graph))
    problems = graph.unresolved + upward_imports(graph) + [" <-> ".join(cycle) + " (a cycle)" for cycle in import_cycles(graph)]
    edges = sum(len(t) for t in graph.edges.values())
    print(f"{len(graph.modules)} modules, {edges} imports between them: "
          f"{len(problems)} problem{'s' * (len(problems) != 1)}")
    for problem in problems:
        print(f"  {problem}")
    return 1 if args.check and problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
