"""The package is a map of the data flow: sub-packages in layers, none importing one above it, no cycle."""

import ast
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "vaepipe"
# Lower numbers first; a package imports only packages of a lower layer, or of its own layer without a cycle.
LAYERS = {"core": 0, "data": 1, "figures": 2, "vae": 2, "classifiers": 2, "latent": 3, "generation": 3, "codecs": 3,
          "anomaly": 3, "explorer": 4}
# Modules at the top: only the old names of moved commands, above every layer (they import where those went).
ALIASES = {"launch.py", "anomaly_cli.py", "compress_cli.py"}


def imported_packages(path: Path) -> set[str]:
    """The vaepipe sub-packages a module imports (at any depth of its code, imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "vaepipe" else [f"vaepipe.{a.name}" for a in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("vaepipe.")}
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) > 1:
            graph.setdefault(relative.parts[0], set()).update(imported_packages(path) - {relative.parts[0]})
    return graph


def test_every_module_lives_in_a_layered_sub_package():
    top = {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py"}
    assert top == ALIASES
    assert {path.parent.name for path in PACKAGE.glob("*/__init__.py")} == set(LAYERS)


def test_no_package_imports_one_above_it():
    offences = [f"{package} (layer {LAYERS[package]}) imports {other} (layer {LAYERS[other]})"
                for package, imports in package_graph().items() for other in imports
                if LAYERS[other] > LAYERS[package]]
    assert offences == []


def test_the_packages_import_each_other_without_a_cycle():
    graph = package_graph()
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, "import cycle: " + " -> ".join((*path, package))
        if package not in done:
            for other in graph.get(package, ()):
                visit(other, (*path, package))
            done.add(package)
    for package in graph:
        visit(package, ())


def test_sub_package_init_files_are_empty():
    # A re-export would make every stage that imports the package depend on all it re-exports (dvc.yaml deps).
    assert {str(p.relative_to(PACKAGE)): p.read_text() for p in PACKAGE.glob("*/__init__.py")} == \
        {f"{package}/__init__.py": "" for package in LAYERS}


def test_the_checker_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from vaepipe.explorer.build import x\nimport vaepipe.core.params\n")
    assert imported_packages(module) == {"explorer", "core"}
