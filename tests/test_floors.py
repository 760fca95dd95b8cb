"""The package's floor plan: each module imports only from its own floor or the floors below,
and only the plugin imports pytest. docs/internals.md shows the same plan; regenerate its table
with `python -m tests.test_floors` after moving a module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

COMMANDS = ["ab", "bisect", "compare", "explain", "fingerprint", "history", "interleave", "noise", "overhead", "report",
            "workers"]
PACKAGE = Path(__file__).resolve().parent.parent / "fitbench"
# Bottom to top. A module on floor N may import modules of floors 0..N.
FLOORS = [
    ("shared types and statistics", ["core.record", "core.run_info", "core.stats", "core.thresholds",
                                     "core.options", "core.lazy", "core"]),
    ("processes", ["processes.groups", "processes.turns", "processes.cluster", "processes.launch", "processes"]),
    ("measuring", ["measure.startup", "measure.workloads", "measure.models", "measure.datasets",
                   "measure.hardware", "measure.devices", "measure.memory", "measure.flops", "measure.peak",
                   "measure.experiments", "measure.opprofile", "measure.runner", "measure"]),
    ("comparing", ["compare.results", "compare.gate", "compare.scaling", "compare.history", "compare.noise",
                   "compare.explain", "compare"]),
    ("presenting", ["present.format", "present.progress", "present.report", "present"]),
    ("the pytest plugin and the command line", ["plugin.session", "plugin.options", "plugin.isolation",
                                                "plugin.results",
                                                "plugin.gating", "plugin.summary", "plugin.collect",
                                                "plugin.hooks", "plugin.durable", "plugin.crashes", "plugin.fixtures",
                                                "plugin.finish",
                                                "plugin",
                                                "cli.common", "cli.ab", "cli.bisect", "cli.confirm", "cli.overhead",
                                                *(f"cli.commands.{name}" for name in COMMANDS), "cli.commands",
                                                "cli", "__main__", ""]),
]


def modules() -> dict[str, Path]:
    """'measure.runner' -> its file, for every module of the package ('' is fitbench itself)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix("__init__").rstrip(".")
        found[name] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules `path` imports (at any depth of the file: lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fitbench":
            base = node.module.removeprefix("fitbench").lstrip(".")
            names = [f"{base}.{alias.name}".lstrip(".") if f"{base}.{alias.name}".lstrip(".") in known else base
                     for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.removeprefix("fitbench").lstrip(".") for a in node.names
                     if a.name.split(".")[0] == "fitbench"]
        out |= {name for name in names if name in known}
    return out


def floor_of() -> dict[str, int]:
    return {module: number for number, (_, members) in enumerate(FLOORS) for module in members}


def test_every_module_has_a_floor():
    assert sorted(set(modules()) - set(floor_of())) == []
    assert sorted(set(floor_of()) - set(modules())) == []


def test_no_module_imports_from_a_floor_above_its_own():
    floors, found = floor_of(), modules()
    upward = [f"{module} (floor {floors[module]}) imports {other} (floor {floors[other]})"
              for module, path in found.items() for other in sorted(imports(path, set(found)))
              if floors[other] > floors[module] and other != ""]
    assert upward == []


def test_only_the_plugin_imports_pytest():
    users = [name for name, path in modules().items()
             if any(isinstance(node, ast.Import | ast.ImportFrom) and
                    any((getattr(node, "module", None) or alias.name).split(".")[0] in ("pytest", "_pytest")
                        for alias in node.names)
                    for node in ast.walk(ast.parse(path.read_text())))]
    assert all(name.startswith("plugin") for name in users), users


def cycles() -> list[list[str]]:
    """Every import circle between the package's modules (lazy imports count), each once."""
    found = modules()
    graph = {module: sorted(imports(path, set(found)) - {module, ""}) for module, path in found.items()}
    circles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for other in graph[module]:
            if state.get(other) == "open":
                circles.append(path[path.index(other):] + [other])
            elif other not in state:
                visit(other, path + [other])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return circles


def test_no_import_circle():
    assert cycles() == []


def test_no_function_is_longer_than_a_screen_and_the_cli_only_dispatches():
    long = [f"{name or 'fitbench'}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for name, path in modules().items() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80]
    assert long == []
    assert len((PACKAGE / "cli" / "__init__.py").read_text().splitlines()) < 150


def table() -> str:
    """The floor plan as markdown: top floor first, each module with its docstring's first line."""
    found = modules()
    lines = ["| floor | module | what it is |", "|---|---|---|"]
    for number, (title, members) in reversed(list(enumerate(FLOORS))):
        for module in members:
            doc = ast.get_docstring(ast.parse(found[module].read_text())) or ""
            first = doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
            lines.append(f"| {number}: {title} | `fitbench{'.' if module else ''}{module}` | {first} |")
    return "\n".join(lines) + "\n"


def test_docs_internals_shows_this_floor_plan():
    text = (PACKAGE.parent / "docs" / "internals.md").read_text()
    assert table() in text, "docs/internals.md is stale: run python -m tests.test_floors and paste its table"


if __name__ == "__main__":
    sys.stdout.write(table())
