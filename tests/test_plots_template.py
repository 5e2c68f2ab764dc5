"""The `dvc plots show` page needs no network: DVC's HTML template is ours, with Vega inlined, unmodified."""

import configparser
import hashlib
import importlib.util
import re

from conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location("vendor_vega", REPO_ROOT / "vendor/vega/update.py")
vendor_vega = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vendor_vega)

SCRIPT = re.compile(r'<script data-package="([^"]+)" data-file="([^"]+)" data-sha256="([0-9a-f]{64})">\n(.*?)\n</script>',
                    re.DOTALL)


def template_text() -> str:
    return vendor_vega.TEMPLATE.read_text()


def test_dvc_config_points_at_the_template():
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / ".dvc/config")
    # DVC resolves a relative html_template against the .dvc directory.
    assert (REPO_ROOT / ".dvc" / config["plots"]["html_template"]).resolve() == vendor_vega.TEMPLATE


def test_template_has_the_plots_placeholder_but_not_dvcs_cdn_scripts():
    text = template_text()
    assert text.count("{plot_divs}") == 1
    assert "{scripts}" not in text  # where DVC would insert its CDN <script src=...> tags
    assert not re.search(r"<script[^>]*\bsrc=", text)


def test_inlined_libraries_are_the_pinned_builds_unmodified():
    found = SCRIPT.findall(template_text())
    assert [package for package, *_ in found] == [f"{name}@{vendor_vega.PACKAGES[name][0]}"
                                                  for name in vendor_vega.SCRIPTS]
    for package, path, sha256, source in found:
        assert path == vendor_vega.SCRIPTS[package.rsplit("@", 1)[0]]
        # Against the hash pinned in update.py, not the page's own attribute, which an edit could change too.
        pinned = vendor_vega.SCRIPT_SHA256[package.rsplit("@", 1)[0]]
        assert hashlib.sha256(source.encode()).hexdigest() == sha256 == pinned, f"{package} {path} was modified"
    assert template_text().count("<script") == len(found)


def test_every_inlined_library_ships_its_licence():
    for name in vendor_vega.SCRIPTS:
        text = (REPO_ROOT / f"vendor/vega/LICENSE-{name}").read_text()
        assert "University of Washington Interactive Data Lab" in text and "Redistribution" in text
