"""Same params, same machine, same bytes: every stage script run again, each in a process of its own as `dvc repro`
runs them (with other hash seeds, and nothing left over from the stage before), writes byte for byte the files the
tiny run wrote with all the stages in the test process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import STAGES, STAGES_IN_ORDER
from vaepipe.core.runtime import COMPILE_ENV

INPUTS = ("params.yaml", "data/raw", "data/ood")  # the params and the downloaded datasets


def written(root: Path) -> dict[str, bytes]:
    """Every file under `root` but the inputs: the models, data, metrics, curves and figures the stages wrote."""
    files = (f for f in sorted(root.rglob("*")) if f.is_file())
    return {name: f.read_bytes() for f in files
            if not (name := f.relative_to(root).as_posix()).startswith(INPUTS)}


def test_each_stage_in_a_process_of_its_own_writes_the_same_bytes(tiny_run, tmp_path):
    root = tmp_path / "repo"
    for name in INPUTS[1:]:
        shutil.copytree(tiny_run / name, root / name, copy_function=os.link)
    shutil.copy2(tiny_run / "params.yaml", root / "params.yaml")
    env = dict(os.environ, **{COMPILE_ENV: "always"})  # as the tiny run: every compiled path
    for stage in STAGES_IN_ORDER:
        done = subprocess.run([sys.executable, str(STAGES / f"{stage}.py")], cwd=root, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, f"{stage}: {done.stderr}"
    first, second = written(tiny_run), written(root)
    assert "models/vae.safetensors" in first and "metrics/cluster.json" in first
    assert any(name.endswith(".png") for name in first) and any(name.startswith("data/") for name in first)
    assert second.keys() == first.keys()
    assert [name for name in first if first[name] != second[name]] == []
