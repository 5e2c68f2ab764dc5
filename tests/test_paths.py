"""One home for every path: vaepipe.core.paths names them, the stage scripts use its names, and dvc.yaml lists the
same paths as each stage's deps and outs."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO_ROOT
from vaepipe.core import paths

STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
ARTIFACT = re.compile(r"^(data|models|metrics|plots|checkpoints)/")
NOT_TRACKED = "checkpoints/"  # training state DVC must not own: it deletes outputs before re-running a stage


def paths_used(script: Path) -> set[str]:
    """The values of the `paths.NAME` constants and `paths.metrics(...)` / `paths.plots(...)` calls in a script."""
    used = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_paths(node.func.value):
            used.add(getattr(paths, node.func.attr)(*(ast.literal_eval(arg) for arg in node.args)))
        elif isinstance(node, ast.Attribute) and _is_paths(node.value):
            value = getattr(paths, node.attr)
            if isinstance(value, str):
                used.add(value)
    return used


def _is_paths(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "paths"


def listed(stage: dict) -> set[str]:
    outs = {next(iter(out)) if isinstance(out, dict) else out for out in stage.get("outs", [])}
    deps = {dep for dep in stage["deps"] if ARTIFACT.match(dep)}
    return outs | deps


def covers(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


@pytest.mark.parametrize("name", sorted(set(STAGES) - {"check_params"}))
def test_a_stage_uses_exactly_the_paths_dvc_yaml_lists_for_it(name):
    used = {path for path in paths_used(REPO_ROOT / "stages" / f"{name}.py") if not path.startswith(NOT_TRACKED)}
    files = listed(STAGES[name])
    assert {f for f in files if not any(covers(u, f) or covers(f, u) for u in used)} == set(), "listed, not used"
    assert {u for u in used if not any(covers(f, u) or covers(u, f) for f in files)} == set(), "used, not listed"


def test_no_artifact_path_is_written_outside_the_paths_module():
    strays = []
    for script in [*(REPO_ROOT / "src" / "vaepipe").rglob("*.py"), *(REPO_ROOT / "stages").glob("*.py")]:
        if script.name == "paths.py":
            continue
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ARTIFACT.match(node.value):
                strays.append(f"{script.relative_to(REPO_ROOT)}:{node.lineno}: {node.value!r}")
    assert strays == []


def test_the_checker_reads_constants_and_calls(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text("from vaepipe.core import paths\nx = paths.VAE\ny = f\"{paths.plots('evaluate')}/a.png\"\n"
                      "z = paths.metrics('evaluate')\n")
    assert paths_used(script) == {"models/vae.safetensors", "plots/evaluate", "metrics/evaluate.json"}
