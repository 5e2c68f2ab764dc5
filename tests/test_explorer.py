"""The latent-space explorer (plots/explorer, vaepipe.explorer.build) in a real browser: Debian's chromium driven by
Playwright, every host name unresolvable, the page opened from file://. What it shows is compared with PyTorch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from playwright.sync_api import sync_playwright

from conftest import chromium, run_stage_script
from vaepipe.core.errors import ArtifactError
from vaepipe.data.datasets import load_split
from vaepipe.explorer.build import ExplorerPage, decoder_program, explorer_files, principal_axes
from vaepipe.vae.codes import decode_probs, posterior_means
from vaepipe.vae.model import VAE, VAEConfig, load_model

TOLERANCE = 1 / 255  # the bar: canvas pixels against PyTorch's probabilities
CPU = torch.device("cpu")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(),
                                              args=["--host-resolver-rules=MAP * ~NOTFOUND"])
        yield launched
        launched.close()


class OpenPage:
    """A page of an explorer folder, opened from disk, with every request and console error it made."""

    def __init__(self, browser, folder: Path, name: str):
        self.folder = folder
        self.requests: list[str] = []
        self.errors: list[str] = []
        # A viewport that holds the whole page, so that the mouse reaches every point of the map.
        self.page = browser.new_page(viewport={"width": 1400, "height": 1400})
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto((folder / name).as_uri())
        self.page.wait_for_function("window.explorer !== undefined")
        self.page.evaluate("explorer.ready")

    def pixels(self, selector: str) -> list[np.ndarray]:
        """The grey level in [0, 1] of every 28 x 28 canvas matching `selector`, in page order."""
        data = self.page.evaluate("""selector => Array.from(document.querySelectorAll(selector), canvas =>
            Array.from(canvas.getContext('2d').getImageData(0, 0, 28, 28).data))""", selector)
        return [np.asarray(rgba, dtype=np.float64).reshape(-1, 4)[:, 0] / 255 for rgba in data]

    def decoded(self) -> np.ndarray:
        return self.pixels("#decoded")[0]

    def set_z(self, z: torch.Tensor) -> None:
        self.page.evaluate("z => explorer.setZ(z)", z.tolist())

    def z(self) -> torch.Tensor:
        return torch.tensor(self.page.evaluate("explorer.z"))

    def point(self, i: int) -> tuple[float, float]:
        return tuple(self.page.evaluate("i => explorer.pointOnScreen(i)", i))

    def close(self) -> None:
        self.page.close()


def assert_decodes(shown: np.ndarray, model: VAE, z: torch.Tensor, label: int | torch.Tensor | None = None) -> None:
    labels = None if label is None else torch.as_tensor(label).reshape(1)
    expected = decode_probs(model, z.reshape(1, -1).float(), labels)[0].double().numpy()
    assert np.abs(shown - expected).max() <= TOLERANCE


@pytest.fixture
def vae_page(browser, tiny_run):
    page = OpenPage(browser, tiny_run / "plots" / "explorer", "index.html")
    yield page
    page.close()


@pytest.fixture
def style_page(browser, tiny_run):
    page = OpenPage(browser, tiny_run / "plots" / "explorer", "style.html")
    yield page
    page.close()


def test_pages_open_offline_with_no_request_outside_their_folder_and_no_console_error(browser, tiny_run):
    folder = tiny_run / "plots" / "explorer"
    evaluate = json.loads((tiny_run / "metrics" / "evaluate.json").read_text())
    for name, facts in (("index.html", ["latent size4", f"test NLL{evaluate['test_nll']:.2f} nats"]),
                        ("style.html", ["latent size4", "conditional on the label", "test −ELBO given the label"])):
        page = OpenPage(browser, folder, name)
        assert page.requests and all(url.startswith(folder.as_uri() + "/") or url.startswith("data:")
                                     for url in page.requests), page.requests
        assert not page.errors
        header = page.page.inner_text("#facts").replace("\n", "").replace("\t", "")
        for fact in facts:
            assert fact in header, (fact, header)
        page.close()


def test_the_canvas_is_pytorchs_decode_of_the_current_z(vae_page, tiny_run):
    model = load_model(str(tiny_run / "models" / "vae.safetensors"), CPU)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        z = 2 * torch.randn(model.config.latent_dim, generator=gen)
        vae_page.set_z(z)
        assert_decodes(vae_page.decoded(), model, z)


def test_the_conditional_page_decodes_the_same_z_as_every_label(style_page, tiny_run):
    model = load_model(str(tiny_run / "models" / "style.safetensors"), CPU)
    z = torch.randn(model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    style_page.set_z(z)
    for label in (3, 7):
        style_page.page.select_option("#label", str(label))
        assert_decodes(style_page.decoded(), model, z, label)
    row = style_page.pixels("#class-row canvas")  # "same style, other digit": z as every class
    assert len(row) == 10
    for label, shown in enumerate(row):
        assert_decodes(shown, model, z, label)


def test_each_slider_moves_z_along_its_direction_and_redraws_once(vae_page, tiny_run):
    model = load_model(str(tiny_run / "models" / "vae.safetensors"), CPU)
    images, _ = load_split(tiny_run / "data" / "raw", "test")
    mean, axes, scales = principal_axes(posterior_means(model, images), 8)
    sliders = vae_page.page.locator("#sliders input[type=range]")
    assert sliders.count() == model.config.latent_dim  # 8 asked, capped at latent_dim 4
    at_load = len(vae_page.page.evaluate("explorer.redrawMs"))
    for d in range(sliders.count()):
        before_z, before = vae_page.z(), vae_page.decoded()
        old = float(sliders.nth(d).input_value())
        new = old + 1.5 if old < 1 else old - 1.5
        sliders.nth(d).fill(f"{new:.2f}")
        after_z = vae_page.z()
        # z now lies `new` standard deviations along direction d, and moved along it alone
        assert (after_z.double().numpy() - mean) @ axes[d] == pytest.approx(new * scales[d], abs=1e-4)
        moved = (after_z - before_z).double().numpy()
        assert np.abs(moved - (moved @ axes[d]) * axes[d]).max() < 1e-5 and np.abs(moved).max() > 0.01
        after = vae_page.decoded()
        assert not np.array_equal(after, before)  # (the tiny model's z moves some pixels by only 1/255)
        assert_decodes(after, model, after_z)
    # One decode a move (how long it takes is bench/explorer.py's to measure, not a test's).
    assert len(vae_page.page.evaluate("explorer.redrawMs")) - at_load == sliders.count()


def test_hovering_shows_the_test_image_and_clicking_makes_its_code_current(vae_page, tiny_run):
    model = load_model(str(tiny_run / "models" / "vae.safetensors"), CPU)
    images, labels = load_split(tiny_run / "data" / "raw", "test")
    codes = posterior_means(model, images)
    for i in (5, 123):
        x, y = vae_page.point(i)
        vae_page.page.mouse.move(x, y)
        caption = vae_page.page.inner_text("#preview-caption")
        shown = int(caption.split(":")[0].removeprefix("test image "))  # points may overlap: the one picked
        assert np.hypot(*np.subtract(vae_page.point(shown), (x, y))) <= 1
        assert caption.endswith(f": {labels[shown].item()}")
        assert np.abs(vae_page.pixels("#preview")[0] - images[shown].double().numpy()).max() < 1e-6  # same bytes
        vae_page.page.mouse.click(x, y)
        assert torch.equal(vae_page.z(), codes[shown])
        assert_decodes(vae_page.decoded(), model, codes[shown])


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    omega = np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


@pytest.mark.parametrize("page_name, end_by", [("index.html", "alt-click"), ("style.html", "button")])
def test_the_walk_has_the_configured_frames_and_its_ends_decode_the_two_picked_images(browser, tiny_run,
                                                                                      page_name, end_by):
    model_file = "vae.safetensors" if page_name == "index.html" else "style.safetensors"
    model = load_model(str(tiny_run / "models" / model_file), CPU)
    conditional = model.config.classes > 0
    images, labels = load_split(tiny_run / "data" / "raw", "test")
    codes = posterior_means(model, images, labels if conditional else None).double().numpy()
    page = OpenPage(browser, tiny_run / "plots" / "explorer", page_name)
    page.page.keyboard.down("Shift")  # shift-click: the walk's start
    page.page.mouse.click(*page.point(40))
    page.page.keyboard.up("Shift")
    if end_by == "alt-click":
        page.page.keyboard.down("Alt")
        page.page.mouse.click(*page.point(77))
        page.page.keyboard.up("Alt")
    else:  # select the image, then make it the end
        page.page.mouse.click(*page.point(77))
        page.page.click("#walk-end")
    ends = page.page.inner_text("#walk-ends")
    a, b = (int(part.split("test image ")[1].split(" ")[0]) for part in ends.split(", B: "))
    for picked, clicked in ((a, 40), (b, 77)):  # the clicked point, or one that overlaps it
        assert np.hypot(*np.subtract(page.point(picked), page.point(clicked))) <= 1
    for mode, path in (("linear", lambda t: (1 - t) * codes[a] + t * codes[b]),
                       ("spherical", lambda t: slerp(codes[a], codes[b], t))):
        page.page.check(f"input[value={mode}]")
        frames = page.pixels("#strip canvas")
        assert len(frames) == 10  # explore.frames
        for f in (0, 4, 9):
            t = f / 9
            label = (1 - t) * torch.nn.functional.one_hot(labels[a], 10) + t * torch.nn.functional.one_hot(labels[b], 10)
            z = torch.from_numpy(path(t)).float().reshape(1, -1)
            x = torch.cat([z, label.float().reshape(1, -1)], 1) if conditional else z
            expected = torch.sigmoid(model.decoder(x))[0].detach().double().numpy()
            assert np.abs(frames[f] - expected).max() <= TOLERANCE, (mode, f)
    # The ends are the two picked images' codes decoded (with their own labels, on the conditional page).
    assert_decodes(frames[0], model, torch.from_numpy(codes[a]), labels[a] if conditional else None)
    assert_decodes(frames[-1], model, torch.from_numpy(codes[b]), labels[b] if conditional else None)
    assert not page.errors
    page.close()


FAMILY = {
    "conv 2 layers": VAEConfig(arch="conv", latent_dim=6, hidden=(8, 16)),
    "conv 1 layer, mog prior": VAEConfig(arch="conv", latent_dim=3, hidden=(4,), prior="mog", prior_components=5),
    "mlp, vamp prior": VAEConfig(arch="mlp", latent_dim=5, hidden=(40, 20), prior="vamp", prior_components=4),
    "conditional mlp": VAEConfig(arch="mlp", latent_dim=2, hidden=(30,), classes=10),
}


@pytest.mark.parametrize("name", FAMILY)
def test_every_decoder_of_the_model_family_decodes_as_in_pytorch(browser, tmp_path, name):
    config = FAMILY[name]
    torch.manual_seed(3)
    model = VAE(config).eval()
    with torch.no_grad():  # larger weights than at initialisation, so that the pixels spread over [0, 1]
        for parameter in model.decoder.parameters():
            parameter.mul_(3)
    images, labels = torch.rand(30, 784), torch.arange(30) % 10
    codes = posterior_means(model, images, labels if config.classes else None)
    files = explorer_files([ExplorerPage("index.html", name, model, "0" * 64, codes, ())], images, labels,
                           tuple(map(str, range(10))), 8, 5)
    for file, data in files.items():
        (tmp_path / file).write_bytes(data)
    page = OpenPage(browser, tmp_path, "index.html")
    gen = torch.Generator().manual_seed(4)
    for label in (0, 9) if config.classes else (None,):
        if label is not None:
            page.page.select_option("#label", str(label))
        for _ in range(2):
            z = 1.5 * torch.randn(config.latent_dim, generator=gen)
            page.set_z(z)
            shown = page.decoded()
            assert_decodes(shown, model, z, label)
            assert shown.std() > 0.05  # not a blank canvas that matches by accident
    assert not page.errors
    page.close()


def test_a_decoder_layer_the_page_cannot_run_is_refused_by_name():
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, hidden=(8,)))
    model.decoder[1] = torch.nn.Tanh()
    with pytest.raises(ArtifactError, match=r"the explorer cannot run a decoder layer Tanh\(\): it runs linear, "):
        decoder_program(model)


def test_principal_axes_are_orthonormal_signed_and_scaled():
    gen = torch.Generator().manual_seed(0)
    codes = torch.randn(2000, 3, generator=gen) * torch.tensor([3.0, 1.0, 0.2]) @ torch.linalg.qr(
        torch.randn(3, 3, generator=gen))[0].T + 5
    mean, axes, scales = principal_axes(codes, 2)
    assert np.allclose(mean, codes.double().mean(0).numpy())
    assert axes.shape == (2, 3) and np.allclose(axes @ axes.T, np.eye(2))
    assert (axes[np.arange(2), np.abs(axes).argmax(1)] > 0).all()
    assert np.allclose(scales, ((codes.double().numpy() - mean) @ axes.T).std(0, ddof=1))
    assert scales == pytest.approx([3.0, 1.0], rel=0.08)


def test_the_stage_rebuilds_the_same_bytes(tiny_run, tmp_path, monkeypatch):
    again = tmp_path / "again"
    for part in ("data", "models", "metrics"):
        shutil.copytree(tiny_run / part, again / part)
    shutil.copy(tiny_run / "params.yaml", again / "params.yaml")
    monkeypatch.chdir(again)
    run_stage_script("explore")
    first, second = tiny_run / "plots" / "explorer", again / "plots" / "explorer"
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert names == ["explorer.css", "explorer.js", "index.html", "index.js", "style.html", "style.js",
                     "test_images.js"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
        assert str(tiny_run).encode() not in (first / name).read_bytes()


def test_the_default_architecture_fits_in_25_mb_and_decodes_as_in_pytorch(browser, tiny_run, tmp_path):
    """The default params' models (random weights: a folder of the same size) on the whole test set."""
    torch.manual_seed(5)
    default, style = VAE(VAEConfig("mlp", 24, (512, 256))).eval(), VAE(VAEConfig("mlp", 4, (512, 256), classes=10))
    images, labels = load_split(tiny_run / "data" / "raw", "test")
    codes = posterior_means(default, images)
    files = explorer_files([ExplorerPage("index.html", "default", default, "0" * 64, codes, (), codes[:, :2].numpy()),
                            ExplorerPage("style.html", "style", style, "0" * 64, posterior_means(style, images, labels), ())],
                           images, labels, tuple(map(str, range(10))), 8, 10)
    assert len(images) == 10_000 and sum(map(len, files.values())) <= 25_000_000
    for file, data in files.items():
        (tmp_path / file).write_bytes(data)
    page = OpenPage(browser, tmp_path, "index.html")
    z = torch.randn(24, generator=torch.Generator().manual_seed(6))
    page.set_z(z)
    assert_decodes(page.decoded(), default, z)
    assert not page.errors
    page.close()


@pytest.mark.e2e
def test_an_experiments_page_shows_that_experiment(browser, tiny_project):
    """After `dvc exp run` (the end-to-end tests' tiny experiment, latent_dim 2), the workspace's page is that
    experiment's: its latent size, its test NLL and its decoder."""
    root, _ = tiny_project
    evaluate = json.loads((root / "metrics" / "evaluate.json").read_text())
    page = OpenPage(browser, root / "plots" / "explorer", "index.html")
    header = page.page.inner_text("#facts").replace("\n", "").replace("\t", "")
    assert "latent size2" in header and f"test NLL{evaluate['test_nll']:.2f} nats" in header, header
    model = load_model(str(root / "models" / "vae.safetensors"), CPU)
    z = torch.tensor([0.5, -1.0])
    page.set_z(z)
    assert_decodes(page.decoded(), model, z)
    assert page.page.locator("#sliders input[type=range]").count() == 2 and not page.errors
    page.close()
