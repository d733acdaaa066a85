"""The package as a house: its modules import one another without a circle, and no function
runs past 80 lines."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The asymbench modules that ``path`` imports, at top level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "asymbench":
            names = ([a.name for a in node.names] if node.module == "asymbench"
                     else [node.module.split(".")[1]])
            found |= {n for n in names if n in modules}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names
                      if a.name.startswith("asymbench.") and a.name.split(".")[1] in modules}
    return found - {path.stem}


def test_no_import_cycle_among_the_modules():
    files = {p.stem: p for p in (ROOT / "asymbench").glob("*.py")}
    graph = {name: imports_of(path, set(files)) for name, path in files.items()}
    assert "evaluation" in graph["distillation"] or "distillation" in graph["evaluation"]
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, stack + [node])):
                return cycle
        state[node] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [])
            assert cycle is None, " -> ".join(cycle)


def test_no_function_is_longer_than_80_lines():
    """A reader follows any function of the package on one screen or two."""
    long = []
    for path in sorted((ROOT / "asymbench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
