"""No dead code: every definition of the package is used by the pipeline, its commands, studies or benchmarks (a
definition only tests use belongs to the tests), and no module imports a name it does not use."""

import ast
import re
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "vaepipe"
PRODUCT = [*PACKAGE.rglob("*.py"), *(REPO_ROOT / "stages").glob("*.py"), *(REPO_ROOT / "studies").rglob("*.py"),
           *(REPO_ROOT / "bench").glob("*.py"), *(REPO_ROOT / "docs").glob("*.py")]
# Called by torch, not by name.
CALLED_BY_FRAMEWORK = {"forward"}


def shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else path.name


def names_used(path: Path) -> set[str]:
    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
    return used


def definitions(path: Path) -> list[str]:
    """Top-level functions, classes and constants of a module, and the public methods of its classes."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found.append(node.name)
            if isinstance(node, ast.ClassDef):
                found += [item.name for item in node.body
                          if isinstance(item, ast.FunctionDef) and not item.name.startswith("__")]
        elif isinstance(node, ast.Assign):
            found += [target.id for target in node.targets if isinstance(target, ast.Name)]
    return found


def unused_definitions(files: list[Path], users: list[Path]) -> list[str]:
    used_by = {path: names_used(path) for path in users}
    imported_by = {path: {alias.name for node in ast.walk(ast.parse(path.read_text()))
                          if isinstance(node, ast.ImportFrom) for alias in node.names} for path in users}
    unused = []
    for path in files:
        text = path.read_text()
        for name in definitions(path):
            elsewhere = any(name in used_by[user] | imported_by[user] for user in users if user != path)
            # Within its own module: named again after its definition.
            within = len(re.findall(rf"\b{re.escape(name)}\b", text)) > 1
            if not (elsewhere or within or name in CALLED_BY_FRAMEWORK):
                unused.append(f"{shown(path)}: {name}")
    return unused


def unused_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    used = names_used(path)
    # Names a module lists in __all__ or re-exports on purpose (`# noqa: F401`) count as used.
    unused = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and "noqa: F401" not in lines[node.end_lineno - 1]:
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                if name not in used and alias.name != "annotations":
                    unused.append(f"{shown(path)}:{node.lineno}: {alias.name}")
    return unused


def test_every_definition_of_the_package_is_used_outside_the_tests():
    assert unused_definitions(sorted(PACKAGE.rglob("*.py")), PRODUCT) == []


def test_no_module_imports_a_name_it_does_not_use():
    files = [*PRODUCT, *(REPO_ROOT / "tests").glob("*.py")]
    assert [line for path in sorted(files) for line in unused_imports(path)] == []


def test_the_checks_see_dead_code(tmp_path):
    module, user = tmp_path / "module.py", tmp_path / "user.py"
    module.write_text("import os\nimport sys  # noqa: F401\n\n\ndef used():\n    pass\n\n\ndef unused():\n    pass\n")
    user.write_text("from module import used\nused()\n")
    module_lines = unused_definitions([module], [module, user])
    assert [line.rsplit(": ", 1)[1] for line in module_lines] == ["unused"]
    assert [line.rsplit(": ", 1)[1] for line in unused_imports(module)] == ["os"]
