"""Wheels of every pinned package (requirements.txt) that a machine without a package registry lacks, to carry there.

    # on the GPU machine:        python3 -m pip list --format=freeze > present.txt
    # here, with a registry:     python bench/offline_wheels.py --present present.txt --python-version 3.12 --out wheels
    # there:                     python3 -m pip install --no-index --no-deps --target /tmp/site wheels/*.whl
    #                            export PYTHONPATH=/tmp/site:src PATH=/tmp/site/bin:$PATH

Packages the machine has already (by name, whatever their version: a GPU machine's own torch must stay) are left
out, and so are those named with --skip (the browser tests' playwright, say). A package published only as source
is built into a wheel here (`pip wheel`), which works for pure-Python ones.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements: str) -> list[tuple[str, str]]:
    """(name, version) of each `name==version` line; comments and environment markers dropped."""
    found = []
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            if not version:
                raise ValueError(f"requirements.txt: `{line}` is not pinned (name==version)")
            found.append((name.strip(), version.strip()))
    return found


def missing(requirements: str, present: str, skip: list[str]) -> list[str]:
    """`name==version` of the pins whose package is neither among `present` (pip freeze lines) nor in `skip`."""
    have = {canonical(re.split(r"[=@ ]", line.strip(), maxsplit=1)[0]) for line in present.splitlines()
            if line.strip() and not line.startswith("#")}
    have |= {canonical(name) for name in skip}
    return [f"{name}=={version}" for name, version in pins(requirements) if canonical(name) not in have]


def download(requirement: str, python_version: str, out: Path) -> None:
    binary = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
              "--python-version", python_version, "--implementation", "cp", "--dest", str(out), requirement]
    for platform in PLATFORMS:
        binary[-1:-1] = ["--platform", platform]
    if subprocess.run(binary, capture_output=True).returncode == 0:
        return
    with tempfile.TemporaryDirectory() as build:
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", build,
                                requirement], capture_output=True, text=True)
        wheels = list(Path(build).glob("*-py3-none-any.whl"))
        if built.returncode or not wheels:
            sys.exit(f"error: no wheel of {requirement} for CPython {python_version} on x86-64 Linux, and it does "
                     "not build into a pure-Python one")
        for wheel in wheels:
            wheel.replace(out / wheel.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--present", required=True, help="`pip list --format=freeze` of the target machine")
    parser.add_argument("--python-version", required=True, help="the target's Python, e.g. 3.12")
    parser.add_argument("--out", required=True, help="folder for the wheels")
    parser.add_argument("--skip", nargs="*", default=["playwright", "greenlet"], help="packages not to carry")
    args = parser.parse_args()
    try:
        present = Path(args.present).read_text()
    except OSError as exc:
        sys.exit(f"error: cannot read --present {args.present} ({exc.strerror})")
    needed = missing((REPO_ROOT / "requirements.txt").read_text(), present, args.skip)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for requirement in needed:
        download(requirement, args.python_version, out)
    size = sum(f.stat().st_size for f in out.glob("*.whl"))
    print(f"{len(needed)} packages, {size / 2**20:.1f} MiB of wheels in {out}")


if __name__ == "__main__":
    main()
