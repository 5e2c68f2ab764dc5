"""bench/offline_wheels.py picks the pinned packages a registry-less machine lacks."""

import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
from offline_wheels import missing, pins  # noqa: E402

REQUIREMENTS = """# a comment
torch==2.14.1
dvc==3.67.1
ruamel.yaml==0.19.1
nvidia-cublas==13.1.1.3 ; sys_platform == "linux" and platform_machine == "x86_64"
playwright==1.65.2
"""


def test_what_the_machine_has_by_any_version_or_spelling_and_what_is_skipped_stay_behind():
    present = "torch==2.11.0+cu130\nnvidia_cublas==13.0.0\nRuamel-YAML @ file:///wheels/x.whl\n"
    assert missing(REQUIREMENTS, present, ["playwright"]) == ["dvc==3.67.1"]
    assert missing(REQUIREMENTS, "", []) == ["torch==2.14.1", "dvc==3.67.1", "ruamel.yaml==0.19.1",
                                             "nvidia-cublas==13.1.1.3", "playwright==1.65.2"]


def test_every_requirement_is_pinned():
    assert len(pins((REPO_ROOT / "requirements.txt").read_text())) > 100
    with pytest.raises(ValueError, match="`dvc>=3` is not pinned"):
        pins("dvc>=3\n")
