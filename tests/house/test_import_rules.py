"""The import rules of docs/architecture.md, checked over the source (AST, nothing imported).

- each layer imports only from the layers before it on the data flow (and the core);
- no import cycles between modules;
- bleak only in ``crampsense.transport``;
- ``firmware_sims`` only through ``crampsense.cli.simulated`` (``--simulate`` and ``demo``);
- no shipped module imports the tests.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
SRC: Final = ROOT / "src"
CORE: Final = frozenset({"models", "errors", "config", "clock"})
#: Layer -> the layers it may import (besides itself and the core).
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "core": frozenset(),
    "devices": frozenset(),
    "transport": frozenset({"devices"}),
    "storage": frozenset(),
    "detection": frozenset(),
    "pipeline": frozenset({"devices", "transport", "storage", "detection"}),
    "journal": frozenset({"storage"}),
    "summaries": frozenset({"storage", "journal", "detection"}),
    "cli": frozenset({"devices", "transport", "storage", "detection", "pipeline", "journal",
                      "summaries"}),
}
#: The public face re-exports lazily from every layer; the entry point runs the CLI.
FACE: Final = frozenset({"crampsense", "crampsense.__main__"})
SIM_ADAPTER: Final = "crampsense.cli.simulated"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (dotted)
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(module: str) -> bool:
    return (SRC / Path(*module.split(".")) / "__init__.py").exists()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports() -> Iterator[Import]:
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(module, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    sub_file = (SRC / Path(*sub.split("."))).with_suffix(".py")
                    is_sub = _is_package(node.module) and (_is_package(sub) or sub_file.exists())
                    yield Import(module, sub if is_sub else node.module, node.lineno)


IMPORTS: Final = list(_imports())


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "crampsense" or module in FACE:
        return None
    if len(parts) == 1 or parts[1] in CORE:
        return "core"
    return parts[1]


def test_the_source_is_walked() -> None:
    assert len({i.module for i in IMPORTS}) > 50
    assert any(i.target.startswith("bleak") for i in IMPORTS)


def test_each_layer_imports_only_downwards() -> None:
    wrong = []
    for imp in IMPORTS:
        mine, theirs = _layer(imp.module), _layer(imp.target)
        if mine is None or theirs is None or theirs in {"core", mine}:
            continue
        if theirs not in ALLOWED[mine]:
            wrong.append(f"{imp.module}:{imp.line} ({mine}) imports {imp.target} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_bleak_only_in_the_transport() -> None:
    wrong = [f"{i.module}:{i.line}" for i in IMPORTS
             if i.target.split(".")[0] == "bleak" and _layer(i.module) != "transport"]
    assert not wrong, wrong


def test_firmware_sims_only_through_the_simulation_adapter() -> None:
    wrong = [f"{i.module}:{i.line} imports {i.target}" for i in IMPORTS
             if i.target.split(".")[0] == "firmware_sims" and i.module != SIM_ADAPTER]
    assert not wrong, wrong


def test_nothing_shipped_imports_the_tests() -> None:
    shipped = [*SRC.rglob("*.py"), *(ROOT / "firmware_sims").rglob("*.py")]
    test_modules = {p.stem for p in (ROOT / "tests").rglob("*.py")}
    wrong = []
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            wrong += [f"{path.relative_to(ROOT)} imports {n}" for n in names
                      if n.split(".")[0] in test_modules | {"tests", "conftest"}]
    assert not wrong, wrong


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.module in FACE or not imp.target.startswith("crampsense."):
            continue
        if imp.target != imp.module:
            graph.setdefault(imp.module, set()).add(imp.target)
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles
