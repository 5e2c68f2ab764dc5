"""Image grids are drawn pixel for pixel: each digit enlarged by repetition, nothing resampled."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import make_grid

from vaepipe.figures.plots import DIGIT_SCALE, GRID_PADDING, image_grids, tiled


def test_image_grids_draws_every_digit_pixel_for_pixel_at_twice_its_size(tmp_path):
    images = (torch.rand(6, 784, generator=torch.Generator().manual_seed(0)) > 0.5).float()  # black or white
    path = tmp_path / "grid.png"
    image_grids({"a title\nof two lines": (images, 3), "another": (1 - images[:2], 2)}, path)
    png = np.asarray(Image.open(path).convert("L")).astype(int)
    for shown, nrow in ((images, 3), (1 - images[:2], 2)):
        grid = make_grid(shown.reshape(-1, 1, 28, 28), nrow=nrow, padding=GRID_PADDING, pad_value=1.0)[0].numpy()
        expected = (grid.repeat(DIGIT_SCALE, 0).repeat(DIGIT_SCALE, 1) * 255).astype(int)
        rows, cols = expected.shape
        found = [(y, x) for y in range(png.shape[0] - rows + 1) for x in range(png.shape[1] - cols + 1)
                 if png[y, x] == expected[0, 0] and np.array_equal(png[y:y + rows, x:x + cols], expected)]
        assert len(found) == 1, f"the {shown.shape[0]}-image grid is not in the figure exactly once: {found}"
    assert DIGIT_SCALE * 28 >= 56


@pytest.mark.parametrize("n, per_row", [(2, 2), (6, 3), (7, 3), (5, 8), (10, 1)])
def test_tiled_lays_images_out_as_torchvision_make_grid(n, per_row):
    images = torch.rand(n, 28, 28, generator=torch.Generator().manual_seed(n))
    expected = make_grid(images.unsqueeze(1), nrow=per_row, padding=GRID_PADDING, pad_value=1.0)[0]
    assert torch.equal(tiled(images, per_row), expected)
