"""Self-labelling: clusters of the codes refined by a CNN that learns them as if they were classes.

The CNN (vaepipe.classifiers.convnet) is trained on every image with its cluster as the label, each batch rotated,
scaled and shifted a little, and its predictions are the refined clusters: the self-labelling step of SCAN (Van
Gansbeke et al. 2020). The clusters say which images belong together; the CNN adds what the codes do not know,
that a digit shifted or turned a few degrees is the same digit, and a member the codes put on the wrong side of a
boundary is outvoted by the many images like it on the right side. No label is used.
"""

from __future__ import annotations

import numpy as np
import torch

from vaepipe.classifiers.convnet import train_convnet

# Adam's settings for the self-labelling CNN (the judge's).
BATCH_SIZE, LR = 128, 0.002


def self_label(images: torch.Tensor, clusters: np.ndarray, n_clusters: int, epochs: int, seed: int, precision: str,
               device: torch.device, subset: int = 0) -> np.ndarray:
    """Each image's refined cluster: the class a CNN trained for `epochs` on (augmented `images` [N, 784], their
    `clusters`, ids 0 .. n_clusters - 1) predicts for the image itself. `subset` > 0 trains it on a seeded draw of
    that many images only (quick runs); every image is predicted."""
    rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:subset] if subset else slice(None)
    net = train_convnet(images[rows], torch.as_tensor(clusters, dtype=torch.int64)[rows], epochs=epochs,
                        batch_size=BATCH_SIZE, lr=LR, seed=seed, precision=precision, device=device, classes=n_clusters,
                        augmented=True)
    return net.predict(images)[0].argmax(1).numpy()
