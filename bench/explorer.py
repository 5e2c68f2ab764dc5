"""How fast the latent-space explorer redraws, in a real browser: the pipeline's plots/explorer pages in Debian's
chromium (headless, driven by Playwright, every host name unresolvable), opened from disk.

    python bench/explorer.py                                   # after `dvc repro explore`
    python bench/explorer.py --moves 500 --out bench/results-cpu-explorer.json

For each page, `--moves` slider moves: a slider and a value drawn at random (seeded), set as a user's drag sets it
and announced with an `input` event. The page times each redraw itself with performance.now(), from its input
handler's start to the decoded image (and, on the conditional page, the row of every label) written into its
canvases. Also reported: the time from navigation until the page's scripts have run, and the folder's bytes.

`--screenshot docs/explorer.png` also saves the README's picture of index.html: test image SHOWN selected,
a walk from WALK[0] to WALK[1], the pointer over HOVERED, reduced to 128 colours.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO_ROOT = Path(__file__).resolve().parent.parent
FOLDER = REPO_ROOT / "plots" / "explorer"

# Runs in the page: `moves` slider moves, each to a value drawn by a seeded generator (mulberry32).
MOVE_SLIDERS = """moves => {
    let seed = 1;
    const random = () => {
        seed = (seed + 0x6D2B79F5) | 0;
        let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const sliders = document.querySelectorAll('#sliders input[type=range]');
    const before = explorer.redrawMs.length;
    for (let k = 0; k < moves; k++) {
        const slider = sliders[Math.floor(random() * sliders.length)];
        slider.value = (Number(slider.min) + random() * (slider.max - slider.min)).toFixed(2);
        slider.dispatchEvent(new Event('input'));
    }
    return explorer.redrawMs.slice(before);
}"""


SHOWN, WALK, HOVERED = 3, (335, 465), 21  # a 0; a walk from a 3 to an 8 (each near its class on the map); a 6


def screenshot(browser, path: Path) -> None:
    from PIL import Image

    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto((FOLDER / "index.html").as_uri())
    page.wait_for_function("window.explorer !== undefined")
    page.evaluate("explorer.ready")
    for i, button in ((WALK[0], "#walk-start"), (WALK[1], "#walk-end"), (SHOWN, None)):
        page.mouse.click(*page.evaluate("i => explorer.pointOnScreen(i)", i))
        if button:
            page.click(button)
    page.locator("#sliders input[type=range]").first.fill("1.2")
    page.mouse.move(*page.evaluate("i => explorer.pointOnScreen(i)", HOVERED))
    page.screenshot(path=str(path))
    page.close()
    Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)


def measure(browser, page_name: str, moves: int) -> dict:
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    start = time.perf_counter()
    page.goto((FOLDER / page_name).as_uri())
    page.wait_for_function("window.explorer !== undefined")
    page.evaluate("explorer.ready")
    load_s = time.perf_counter() - start
    redraws = page.evaluate(MOVE_SLIDERS, moves)
    page.close()
    ordered = sorted(redraws)
    return {"load_s": load_s, "moves": len(redraws), "redraw_ms": {
        "median": statistics.median(ordered), "p95": ordered[int(0.95 * (len(ordered) - 1))], "max": ordered[-1]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=200, help="slider moves per page")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot of index.html here (PNG)")
    args = parser.parse_args()
    if not (FOLDER / "index.html").is_file():
        raise SystemExit(f"error: {FOLDER / 'index.html'} is missing; run `dvc repro explore` first")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("error: chromium not found (apt-get install chromium)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    results = {"commit": commit, "date": datetime.date.today().isoformat(),
               "folder_bytes": sum(f.stat().st_size for f in FOLDER.iterdir()), "pages": {}}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=["--host-resolver-rules=MAP * ~NOTFOUND"])
        results["chromium"] = browser.version
        for page_name in ("index.html", "style.html"):
            results["pages"][page_name] = measure(browser, page_name, args.moves)
        if args.screenshot:
            screenshot(browser, args.screenshot)
        browser.close()
    for page_name, numbers in results["pages"].items():
        ms = numbers["redraw_ms"]
        print(f"{page_name}: loaded in {numbers['load_s']:.2f} s; redraw after a slider move over {numbers['moves']} "
              f"moves: median {ms['median']:.2f} ms, p95 {ms['p95']:.2f} ms, max {ms['max']:.2f} ms")
    print(f"folder: {results['folder_bytes']:,} bytes")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
