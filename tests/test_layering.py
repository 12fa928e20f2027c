"""lib/ keeps its layout: packages in the order of `lib.LAYERS`, where a lower layer never imports a
higher one, nothing imports Streamlit or the app around it, and every import of a lib module names one
that exists. Every import is read from the source with `ast`, those inside functions too (many
modules import lazily), so a wrong one is found without running the code that holds it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lib

LIB = Path(lib.__file__).resolve().parent
# What lib/ never imports: Streamlit, and the app, scripts and tests around the engine.
OUTSIDE = ("streamlit", "ui", "pages", "app", "bench", "scripts", "tests", "conftest")
TOP = len(lib.LAYERS)  # the use cases (and `lib` itself) sit above every package


def module_name(path: Path) -> str:
    """lib/data/loader.py -> 'lib.data.loader'; lib/data/__init__.py -> 'lib.data'."""
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """Its place in lib.LAYERS (0 = lowest); TOP for the use cases."""
    parts = module.split(".")
    return lib.LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in lib.LAYERS else TOP


def layer_name(module: str) -> str:
    return lib.LAYERS[layer(module)] if layer(module) < TOP else "use cases"


def _top_level_names(tree: ast.Module) -> dict[str, str | None]:
    """What a module binds at its top level (also under if/try/with): each name, with the module it was
    imported from, or None when it is defined here (function, class, assignment)."""
    defined: set[str] = set()
    imported: dict[str, str] = {}
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import):
            imported |= {(a.asname or a.name).split(".")[0]: a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {a.asname or a.name: "." * node.level + (node.module or "") for a in node.names}
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            todo += node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", [])
            todo += [n for h in getattr(node, "handlers", []) for n in h.body]
    return {**imported, **dict.fromkeys(defined)}


def imports(tree: ast.AST) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for every import anywhere in the tree; name is None for `import x`.
    A relative import's module keeps its dots ('.', '..x')."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found += [(node.lineno, module, a.name) for a in node.names]
    return found


def read_lib() -> tuple[dict[str, dict[str, str | None]], list[tuple[str, int, str, str | None]]]:
    """Every module of lib/ with the names it defines, and every import edge (importer, line, module, name)."""
    known, edges = {}, []
    for path in sorted(LIB.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        name = module_name(path)
        known[name] = _top_level_names(tree)
        edges += [(name, line, module, imported) for line, module, imported in imports(tree)]
    return known, edges


def problems(known: dict[str, dict[str, str | None]], edges) -> list[str]:
    """One line per import that breaks the layout, naming the file's module, the line and what it imports.

    known: every module of lib with the names it binds (see `_top_level_names`); edges: (importer,
    line, module, name), name None for `import module`.
    """
    found = []
    for importer, line, module, name in edges:
        where = f"{importer} (line {line})"
        if module.startswith("."):
            found.append(f"{where}: relative import {module!r}: write lib.… in full, so its layer shows")
            continue
        root = module.split(".")[0]
        if root in OUTSIDE:
            found.append(f"{where} imports {module}: nothing in lib/ imports Streamlit or the app around it")
            continue
        if root != "lib":
            continue
        target = f"{module}.{name}" if name is not None and f"{module}.{name}" in known else module
        if target not in known:
            found.append(f"{where} imports {module}, which does not exist (moved? see the README's layout)")
        elif target == module and name is not None and name not in known[module]:
            found.append(f"{where} imports {name!r} from {module}, which does not define it")
        elif target == module and name is not None and known[module][name] is not None:
            found.append(f"{where} imports {name!r} from {module}, which only imports it: import it from "
                         f"{known[module][name]}, where it is defined (one place for each name)")
        elif layer(target) > layer(importer):
            found.append(f"{where} imports {target}: a lower layer ({layer_name(importer)}) imports a higher one "
                         f"({layer_name(target)}); order: {' < '.join(lib.LAYERS)} < use cases")
    return list(dict.fromkeys(found))  # one line per import, however many names it brings


# ---------------------------------------------------------------- the tree as it is


def test_no_import_in_lib_breaks_the_layers():
    known, edges = read_lib()
    assert len(edges) > 100  # really read: lib/ holds a few hundred imports
    found = problems(known, edges)
    assert not found, "\n".join(found)


def test_every_package_has_a_layer_and_says_what_it_is_for():
    packages = {p.parent.name for p in LIB.glob("*/__init__.py")}
    assert packages == set(lib.LAYERS), "a package of lib/ is missing from lib.LAYERS (or the other way round)"
    for name in lib.LAYERS:
        doc = ast.get_docstring(ast.parse((LIB / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"lib/{name}/__init__.py says what the package is for and what it may import"


def test_only_the_use_cases_stay_at_the_top():
    top = {p.stem for p in LIB.glob("*.py")} - {"__init__", "__main__"}
    assert top == set(lib.USE_CASES), (
        f"top-level modules of lib/: {sorted(top)}; a new module belongs in the package of its job "
        "(a new use case goes into lib.USE_CASES)")


# ---------------------------------------------------------------- the checker can fail


KNOWN = {
    "lib": {}, "lib.data": {}, "lib.data.loader": {"load_dataset": None, "TaskData": "lib.data.taskdata"},
    "lib.data.uploads": {"handle_upload": None}, "lib.data.taskdata": {"TaskData": None},
    "lib.train": {}, "lib.train.trainer": {"train": None}, "lib.experiment": {"Experiment": None},
}


def test_the_checker_names_each_wrong_import_and_passes_the_right_ones():
    edges = [
        ("lib.data.loader", 3, "lib.train.trainer", "train"),  # data imports train: upward
        ("lib.train.trainer", 4, "lib.data.loader", "load_dataset"),  # downward: fine
        ("lib.train.trainer", 5, "streamlit", None),
        ("lib.train.trainer", 6, "lib.training", "train"),  # an old path
        ("lib.data.loader", 7, "lib.experiment", "Experiment"),  # a package imports a use case
        ("lib.train.trainer", 8, "lib.data.loader", "load_folder"),  # a name the module lacks
        ("lib.experiment", 9, "lib.data", "uploads"),  # a submodule of a package: fine
        ("lib.data.loader", 10, ".uploads", "handle_upload"),
        ("lib.data.loader", 11, "ui.components", "render_results"),
        ("lib.data.loader", 12, "numpy", None),  # not lib: not checked
        ("lib.train.trainer", 13, "lib.data.loader", "TaskData"),  # through a module that only imports it
        ("lib.train.trainer", 14, "lib.data.taskdata", "TaskData"),  # from where it is defined: fine
    ]
    found = problems(KNOWN, edges)
    assert len(found) == 8, "\n".join(found)
    by_line = {int(f.split("(line ")[1].split(")")[0]): f for f in found}
    assert set(by_line) == {3, 5, 6, 7, 8, 10, 11, 13}
    assert "import it from lib.data.taskdata" in by_line[13]
    assert "lib.data.loader (line 3) imports lib.train.trainer: a lower layer (data) imports a higher one (train)" \
        in by_line[3]
    assert "Streamlit" in by_line[5] and "Streamlit" in by_line[11]
    assert "does not exist" in by_line[6]
    assert "(use cases)" in by_line[7]
    assert "'load_folder' from lib.data.loader, which does not define it" in by_line[8]
    assert "relative import" in by_line[10]


def test_a_wrong_import_inside_a_function_of_a_real_module_is_found():
    path = LIB / "data" / "taskdata.py"
    source = path.read_text(encoding="utf-8") + "\n\ndef _sneaky():\n    from lib.train.trainer import train\n"
    known, _ = read_lib()
    edges = [("lib.data.taskdata", line, module, name) for line, module, name in imports(ast.parse(source))]
    found = problems(known, edges)
    assert len(found) == 1 and "lib.data.taskdata (line" in found[0] and "imports lib.train.trainer" in found[0]
