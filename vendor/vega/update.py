"""Rebuild `dvc_plots.html`: DVC's HTML template for `dvc plots show`, with Vega inlined, so the page needs no network.

    python vendor/vega/update.py        # needs `npm` and its registry; run from anywhere

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline it shows no chart.
`.dvc/config` points `plots.html_template` at the file this script writes. The template has DVC's
`{plot_divs}` placeholder but not `{scripts}`, where DVC would put its CDN <script> tags.

Each library is the unmodified minified build file of a pinned npm package; `npm pack` fetches the
package and its sha512 must equal the pinned integrity, and each build file its pinned sha256, before
anything is written. The licence files come from the same pinned packages.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "dvc_plots.html"

# (package, version, npm integrity): Vega-Lite 5 because DVC's specs use the v5 schema.
PACKAGES = {
    "vega": ("5.33.1", "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw=="),
    "vega-lite": ("5.23.0", "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA=="),
    "vega-embed": ("6.29.0", "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q=="),
    # The vega package ships no licence file; vega-view, a module of its bundle (the version vega pins), does.
    "vega-view": ("5.16.1", "sha512-YyG4i2JDkRCacHd9xNAwyov2cELxwzPGY224PA2o0gEhkoOjPkVElTmo9QHJvKeVxMoyad6wvoq+Jj+TB6zhLw=="),
}
# In load order: vega-lite and vega-embed find the libraries before them as globals.
SCRIPTS = {"vega": "build/vega.min.js", "vega-lite": "build/vega-lite.min.js",
           "vega-embed": "build/vega-embed.min.js"}
# sha256 of each build file as the pinned package ships it: the page must inline exactly these bytes.
SCRIPT_SHA256 = {
    "vega": "463f3db6a40b20e9747b4ed38f37ed0add508838f9141b1cf8366784b07b30c8",
    "vega-lite": "58c27358e26f2d319cf62f45bc17a4c8362f08645001df2ec8d341eee4097c7f",
    "vega-embed": "12d02acfbe3ec59ef9a37dd4822a2e04e2961b5bbb671bbe661d2221715b99da",
}
LICENSES = {"vega": "vega-view", "vega-lite": "vega-lite", "vega-embed": "vega-embed"}
DVC_PLACEHOLDERS = ("{plot_divs}", "{scripts}", "{refresh_tag}")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{{refresh_tag}}
<title>vaepipe: DVC plots</title>
<!-- Inlined so that the page renders without network access; see vendor/vega/README.md. -->
{scripts}
<style>
body {{ font-family: sans-serif; margin: 1em 2em; }}
table {{ border-spacing: 15px; }}
</style>
</head>
<body>
<h1>vaepipe: DVC plots</h1>
{{plot_divs}}
</body>
</html>
"""


def fetch(package: str, workdir: Path) -> tarfile.TarFile:
    version, integrity = PACKAGES[package]
    subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", str(workdir)],
                   check=True, capture_output=True)
    tarball = workdir / f"{package}-{version}.tgz"
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != integrity:
        raise SystemExit(f"{tarball.name}: integrity {digest}, expected {integrity}")
    return tarfile.open(tarball)


def read_member(archive: tarfile.TarFile, name: str) -> str:
    return archive.extractfile(f"package/{name}").read().decode()


def script_block(package: str, source: str) -> str:
    for forbidden in ("</script", *DVC_PLACEHOLDERS):
        if forbidden in source:
            raise SystemExit(f"{package}: its build contains {forbidden!r}; it cannot be inlined as is")
    sha256 = hashlib.sha256(source.encode()).hexdigest()
    if sha256 != SCRIPT_SHA256[package]:
        raise SystemExit(f"{package}: {SCRIPTS[package]} has sha256 {sha256}, expected {SCRIPT_SHA256[package]}")
    version, _ = PACKAGES[package]
    return (f'<script data-package="{package}@{version}" data-file="{SCRIPTS[package]}" '
            f'data-sha256="{sha256}">\n{source}\n</script>')


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archives = {package: fetch(package, Path(tmp)) for package in PACKAGES}
        blocks = [script_block(package, read_member(archives[package], path)) for package, path in SCRIPTS.items()]
        for package, source in LICENSES.items():
            (HERE / f"LICENSE-{package}").write_text(read_member(archives[source], "LICENSE"))
    page = PAGE.format(scripts="\n".join(blocks))
    tmp_template = TEMPLATE.with_suffix(".tmp")
    tmp_template.write_text(page)
    tmp_template.replace(TEMPLATE)
    print(f"wrote {TEMPLATE} ({len(page):,} characters)")


if __name__ == "__main__":
    main()
