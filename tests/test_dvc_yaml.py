"""dvc.yaml is the architecture diagram: it must list exactly what each stage uses, or DVC's caching lies."""

import functools
import json
import subprocess
import sys

import pytest
import yaml

from vaepipe.core.params import valid_keys
from conftest import REPO_ROOT, params_read_file

STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]

# One process for every script: it imports the heavy third-party packages once, then forks a child a script, so
# each child starts with none of vaepipe imported and reports what running its script imported.
IMPORTED_MODULES = """
import importlib.util, json, os, sys
import constriction, dvclive, matplotlib.pyplot, pandas, PIL.Image, safetensors.torch, scipy.optimize, scipy.stats  # noqa
import sklearn.cluster, sklearn.decomposition, sklearn.linear_model, sklearn.metrics, sklearn.mixture  # noqa
import sklearn.neighbors, sklearn.pipeline, sklearn.preprocessing, sklearn.semi_supervised  # noqa
import torch, torch.distributed  # noqa
torch.compile(abs)  # imports TorchDynamo, as vaepipe's compiled functions do
for script in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python SCRIPT` has it
        spec = importlib.util.spec_from_file_location("stage_under_test", script)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        # Modules, not packages: the sub-packages' __init__.py files are empty (tests/test_layers.py).
        files = sorted(os.path.relpath(module.__file__) for name, module in list(sys.modules.items())
                       if name.startswith("vaepipe.") and not module.__file__.endswith("__init__.py"))
        os.write(write, json.dumps(files).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as child:
        print(child.read())
    assert os.wait()[1] == 0, script
"""


# Files a module reads besides its imports: a stage that imports the module depends on them too.
MODULE_DATA = {"src/vaepipe/explorer/build.py": "src/vaepipe/explorer/page"}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_list_exactly_the_modules_it_imports(name):
    stage = STAGES[name]
    script = f"stages/{name}.py"
    imported = imported_sources(script)
    if name == "train":  # started on `train.nproc` processes by the launcher, whose modules it depends on too
        assert stage["cmd"] == f"python -m vaepipe.vae.launch --nproc-per-node ${{train.nproc}} {script}"
        imported |= imported_sources("src/vaepipe/vae/launch.py") | {"src/vaepipe/vae/launch.py"}
    else:
        assert stage["cmd"] == f"python {script}"
    listed = {d for d in stage["deps"] if d.startswith("src/")}
    assert listed == imported | {MODULE_DATA[module] for module in imported if module in MODULE_DATA}
    assert script in stage["deps"]


def imported_sources(script):
    """The vaepipe source files running `script` imports, relative to the repository root."""
    return all_imported_sources()[str(script)]


@functools.cache
def all_imported_sources() -> dict[str, set[str]]:
    scripts = [f"stages/{name}.py" for name in STAGES] + ["src/vaepipe/vae/launch.py"] + [
        str((folder / stage["cmd"].split()[1]).relative_to(REPO_ROOT)) for folder, stage in STUDY_STAGES.values()]
    out = subprocess.run([sys.executable, "-c", IMPORTED_MODULES, *scripts], capture_output=True, text=True,
                         check=True, cwd=REPO_ROOT).stdout
    return {script: set(json.loads(line))
            for script, line in zip(scripts, out.splitlines(), strict=True)}


STUDY_STAGES = {f"{path.parent.name}/{name}": (path.parent, stage.get("do", stage))
                for path in sorted((REPO_ROOT / "studies").glob("*/dvc.yaml"))
                for name, stage in yaml.safe_load(path.read_text())["stages"].items()}


@pytest.mark.parametrize("name", sorted(STUDY_STAGES))
def test_study_stage_deps_list_exactly_the_modules_it_imports(name):
    folder, stage = STUDY_STAGES[name]
    script = stage["cmd"].split()[1]
    assert stage["cmd"].startswith(f"python {script}") and script in stage["deps"]
    listed = {d.removeprefix("../../") for d in stage["deps"] if d.startswith("../../src/")}
    if listed == {"src/vaepipe"}:  # a stage that runs the whole pipeline (studies/variation) depends on all of it
        assert {"../../stages", "../../params.yaml"} <= set(stage["deps"])
        assert imported_sources(folder.relative_to(REPO_ROOT) / script)
    else:
        assert listed == imported_sources(folder.relative_to(REPO_ROOT) / script)


@pytest.mark.parametrize("name", sorted(set(STAGES) - {"check_params"}))
def test_stage_params_are_real_keys(name):
    keys = set(valid_keys())
    assert set(STAGES[name].get("params", [])) <= keys


def test_check_params_tracks_the_whole_file_and_writes_nothing():
    # `params.yaml:` with no key list: DVC then tracks every key, unknown ones included.
    assert STAGES["check_params"]["params"] == [{"params.yaml": None}]
    assert "outs" not in STAGES["check_params"]


@pytest.mark.parametrize("name", sorted(set(STAGES) - {"check_params"}))
def test_every_params_key_a_stage_reads_is_listed_for_it(name, tiny_run):
    """What keeps DVC's cache honest: a key read but not listed would not re-run the stage when it changes. The
    keys are those each stage read in the tiny run (conftest's `every_stage_run` records them)."""
    read = set(json.loads(params_read_file(tiny_run).read_text())[name])
    assert read, "the recorder saw no read at all"
    assert read <= set(STAGES[name]["params"])


@pytest.mark.parametrize("name", sorted(STAGES))
def test_the_usage_lines_of_a_stage_script_run_as_written(name):
    """Each stage script starts with the commands a user types for it: real stages, and overrides params.yaml takes."""
    from vaepipe.core.params import parse_params, read_yaml, with_overrides

    doc = (REPO_ROOT / "stages" / f"{name}.py").read_text().split('"""')[1]
    commands = [line.split("#")[0].split() for line in doc.splitlines() if line.startswith("    dvc ")]
    assert ["dvc", "repro", name] in [command[:3] for command in commands]
    for command in commands:
        if command[:3] == ["dvc", "exp", "run"]:
            overrides = command[4::2]
            assert command[3::2] == ["-S"] * len(overrides)
            parse_params(with_overrides(read_yaml(REPO_ROOT / "params.yaml"), overrides))
        else:
            assert command[:2] == ["dvc", "repro"] and command[2] in STAGES
