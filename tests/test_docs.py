"""The docs are for users and say what the code does: generated parts match their sources, every key, stage and
command is documented, every link resolves, and no page speaks of commits or of how it was built."""

import re
import sys
import tomllib

import pytest
import yaml

from conftest import REPO_ROOT
from vaepipe.core.params import valid_keys

sys.path.insert(0, str(REPO_ROOT / "docs"))
import build  # noqa: E402

PAGES = {page: (REPO_ROOT / page).read_text() for page in build.PAGES}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_committed_page_is_what_make_docs_writes(page):
    assert build.render(PAGES[page]) == PAGES[page], f"{page} is out of date: run `make docs`"


def test_every_params_key_is_in_the_parameter_reference():
    reference = PAGES["docs/parameters.md"]
    assert [key for key in valid_keys() if f"`{key}`" not in reference] == []


def test_every_stage_is_in_the_stage_reference():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    reference = PAGES["docs/pipeline.md"]
    assert [name for name in stages if reference.count(f"`{name}`") < 2] == []  # in both tables


def test_every_console_script_is_in_the_command_reference():
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    reference = PAGES["docs/commands.md"]
    assert [name for name in scripts if f"usage: {name}" not in reference] == []


def test_the_headline_numbers_are_the_metrics():
    import json

    evaluate = json.loads((REPO_ROOT / "metrics/evaluate.json").read_text())
    compress = json.loads((REPO_ROOT / "metrics/compress.json").read_text())
    assert f"| {evaluate['test_nll']:.2f} nats ({evaluate['test_bpd']:.4f} bits/pixel) |" in PAGES["README.md"]
    assert f"{compress['total_bpp']:.4f}" in PAGES["docs/results.md"]


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_relative_link_and_image_resolves(page):
    base = (REPO_ROOT / page).parent
    broken = []
    for target in LINK.findall(PAGES[page]):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (base / path).resolve() if path else REPO_ROOT / page
        if not file.exists():
            broken.append(target)
        elif anchor and anchor not in anchors(file.read_text()):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", sorted(PAGES))
def test_no_page_speaks_of_commits_or_of_how_it_was_built(page):
    text = PAGES[page]
    assert re.findall(r"\b[0-9a-f]{7,40}\b", text) == []
    assert re.findall(r"acceptance|\bissue \d+|this session", text, flags=re.I) == []


def test_the_readme_is_short_and_starts_with_the_picture_and_the_set_up():
    text = PAGES["README.md"]
    assert len(text.splitlines()) <= 200 and len(text.encode()) <= 12 * 1024
    first = "\n".join(text.splitlines()[:60])
    assert "![" in first and "git clone" in first and "make pipeline" in first


def test_the_checks_see_a_stale_block_and_a_broken_link(tmp_path):
    stale = "<!-- generated: dag -->\nold\n<!-- end generated -->\n"
    assert build.render(stale) != stale
    assert anchors("# Two words\n## A `code` heading\n") == {"two-words", "a-code-heading"}
