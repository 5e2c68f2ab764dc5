"""Nothing the pipeline reads back can execute code: no unpickling, no unsafe YAML, no shell built from params."""

import re

import pytest

from conftest import REPO_ROOT

FORBIDDEN = {
    "torch.load without weights_only=True": re.compile(r"torch\.load\((?![^)]*weights_only=True)"),
    "pickle": re.compile(r"\bimport pickle\b|\bpickle\.loads?\("),
    "yaml.load (use yaml.safe_load)": re.compile(r"\byaml\.(load|unsafe_load|full_load)\("),
    "a shell command": re.compile(r"shell=True|os\.system\(|os\.popen\("),
}
SOURCES = sorted(p for d in ("src", "stages", "bench") for p in (REPO_ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("rule", FORBIDDEN)
def test_no_unsafe_loading_or_shell(rule):
    assert SOURCES
    offenders = [f"{p.relative_to(REPO_ROOT)}:{n}" for p in SOURCES
                 for n, line in enumerate(p.read_text().splitlines(), 1) if FORBIDDEN[rule].search(line)]
    assert offenders == [], f"{rule} in {offenders}"


def test_the_rules_catch_what_they_name():
    assert FORBIDDEN["torch.load without weights_only=True"].search("torch.load(path)")
    assert not FORBIDDEN["torch.load without weights_only=True"].search("torch.load(path, weights_only=True)")
    assert FORBIDDEN["yaml.load (use yaml.safe_load)"].search("yaml.load(text)")
    assert not FORBIDDEN["yaml.load (use yaml.safe_load)"].search("yaml.safe_load(text)")
