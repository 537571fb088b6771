"""The package's layout: no import circle among rag_bench's modules, each imports on its own, none is too long.

    .venv/bin/pytest tests/test_layout.py -q

The import graph is read from the source (``ast``): every ``import`` and ``from ... import`` of a rag_bench
module, at the top or inside a function (a lazy import still runs, only later), plus the package ``__init__``
that an import from another package runs first. It must be acyclic. Each module is then imported in a fresh
child process, forked from one that holds only the third-party libraries, so a circle that only shows at run
time (a partially initialised module) fails here too, in seconds.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rag_bench"
MAX_LINES = 360  # the guide says ~350 lines per module; 360 leaves room for a docstring line, not a second concern
# The flow, lowest first: a subpackage (or top-level module) imports only those of its own rank or below.
RANK = {name: rank for rank, names in enumerate([
    ("_lazy", "config"), ("records", "run_status"), ("corpus",), ("index",), ("lm", "models", "prompt"), ("training",),
    ("probes",), ("answer", "extract"), ("eval",), ("collapse",), ("theory", "contaminate", "distributed"), ("report",),
    ("cli", "app", "__main__", "rag_bench")]) for name in names}
KNOWN_UPWARD = {  # imports against the flow, each inside the function that needs it, or a leaf
    ("collapse", "distributed"): "run_collapse --ray hands branches, writing and answering to Ray (collapse/run.py)",
    ("collapse", "report"): "a run's last step writes its report (collapse/steps.py)",
    ("contaminate", "report"): "the contamination figures use the report's plot style (contaminate/report.py)",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Absolute names of everything ``path`` (module ``name``) imports, as written."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # a submodule, when it is one
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the rag_bench modules importing it runs (its imports and the packages they enter)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges: set[str] = set()
        for target in imported_names(path, name):
            if target not in MODULES:
                continue
            edges.add(target)
            parts = target.split(".")
            for depth in range(1, len(parts)):  # a package's __init__ runs first, unless the importer is inside it
                parent = ".".join(parts[:depth])
                if not (name == parent or name.startswith(parent + ".")):
                    edges.add(parent)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_of_rag_bench_has_no_circle():
    graph = import_graph()
    assert len(graph) > 50 and graph["rag_bench.training.loop"] >= {"rag_bench.training.batches", "rag_bench.lm"}
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_subpackages_import_only_those_before_them_in_the_flow():
    def unit(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "rag_bench"

    upward = {}
    for name, targets in import_graph().items():
        for target in targets:
            pair = (unit(name), unit(target))
            if RANK[pair[0]] < RANK[pair[1]] and pair not in KNOWN_UPWARD:
                upward.setdefault(pair, []).append(f"{name} -> {target}")
    assert not upward, upward
    assert set(RANK) >= {unit(name) for name in MODULES}, "a new subpackage needs its place in RANK"


def test_the_cycle_finder_finds_a_circle_through_a_package_init():
    graph = {"a": {"b.x"}, "b": {"b.y"}, "b.x": set(), "b.y": {"a"}}
    assert find_cycle(graph) is None  # b.x itself imports nothing
    graph["a"] = {"b.x", "b"}  # as import_graph records `from b.x import f` in a: b's __init__ runs first
    assert find_cycle(graph) == ["a", "b", "b.y", "a"]


def _third_party(graph_modules: dict[str, Path]) -> list[str]:
    names = set()
    for name, path in graph_modules.items():
        names.update(n.split(".")[0] for n in imported_names(path, name))
    return sorted(n for n in names if n and n != "rag_bench" and n not in sys.builtin_module_names)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one child per module")
def test_every_module_imports_on_a_fresh_interpreter(tmp_path):
    """Each rag_bench module imported first, alone: a child forked from a process that imported no rag_bench (as many
    children at once as there are cores)."""
    import subprocess

    script = tmp_path / "each.py"
    script.write_text(
        "import importlib, os, sys, traceback\n"
        "for lib in sys.argv[2].split(','):\n"
        "    try:\n        importlib.import_module(lib)\n"
        "    except Exception:\n        pass\n"
        "assert not [m for m in sys.modules if m.startswith('rag_bench')]\n"
        "failed, running = [], {}\n"
        "for name in sys.argv[1].split(','):\n"
        "    if len(running) >= (os.cpu_count() or 1):  # one child per core at a time\n"
        "        pid, status = os.wait()\n"
        "        if status != 0:\n            failed.append(running[pid])\n"
        "        del running[pid]\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n            importlib.import_module(name)\n"
        "        except BaseException:\n            traceback.print_exc(limit=-3)\n            os._exit(1)\n"
        "        os._exit(0)\n"
        "    running[pid] = name\n"
        "while running:\n"
        "    pid, status = os.wait()\n"
        "    if status != 0:\n        failed.append(running[pid])\n"
        "    del running[pid]\n"
        "print('FAILED ' + ','.join(sorted(failed)) if failed else 'OK')\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    modules = [name for name in MODULES if name != "rag_bench.__main__"]  # importing it runs the command line
    result = subprocess.run([sys.executable, str(script), ",".join(modules), ",".join(_third_party(MODULES))],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.stdout.strip().endswith("OK"), result.stdout[-3000:] + result.stderr[-3000:]


def test_no_module_is_longer_than_the_guide_allows():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"
