"""Views of the latent space: 2-D maps of the codes, interpolations between them, the decoded manifold."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import torch


# scikit-learn and umap are imported inside the embedding functions: importing scikit-learn takes 0.8 s, which
# the stages that only encode and decode (evaluate, style) would pay for nothing.


def umap_embedding(codes: np.ndarray, n_components: int, n_neighbors: int, seed: int, *, min_dist: float = 0.1,
                   n_epochs: int | None = None) -> np.ndarray:
    """UMAP (McInnes et al. 2018) of the codes, built on their exact k-NN graph.

    The exact graph (scikit-learn, brute force: 9 s for 70,000 codes here) stands in for UMAP's approximate
    nearest-neighbour descent, whose numba compilation alone takes ~30 s in every new process. With a seed,
    UMAP optimises on one thread and gives the same bytes run to run on one machine; numba's floating point
    may differ on another CPU, so embeddings (and what is fitted on them) are not bit-identical across machines.
    """
    import umap  # importing it also compiles numba code (~2 s)
    from sklearn.neighbors import NearestNeighbors

    _cache_numba_compiles()
    n_neighbors = min(n_neighbors, len(codes))
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(codes).kneighbors(codes)
    reducer = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=n_epochs,
                        random_state=seed, precomputed_knn=(indices, distances.astype(np.float32), None))
    # UMAP hands numba its thread count back at the end (numba's default: every core), and numba's OpenMP layer is
    # torch's too: without this, torch would run on every core after it, whatever OMP_NUM_THREADS asked for.
    torch_threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            # Both say what is intended: one thread for a seeded run, and no `transform` of new codes later.
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
            return reducer.fit_transform(codes)
    finally:
        torch.set_num_threads(torch_threads)


def _cache_numba_compiles() -> None:
    """Give every numba function UMAP (and its pynndescent) defines an on-disk cache of its machine code.

    UMAP marks fewer than half of them `cache=True`, so the rest (the layout optimiser among them) compiled
    again in every process: 24 s of every cluster run here (79.6 s compiling, 55.9 s cached). numba keys a
    cached compile by the function's source, its argument types and the CPU, so a cached one is the very
    code a fresh compile would produce.
    """
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("umap", "pynndescent"):
            for value in vars(module).values():
                if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):  # not cached yet
                    value.enable_caching()


def embed_2d(codes: np.ndarray, method: str, seed: int) -> np.ndarray:
    """The codes themselves when 2-D, else UMAP, PCA or t-SNE down to two dimensions."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if codes.shape[1] == 2:
        return codes
    if method == "umap":
        # 100 epochs, not UMAP's 500 for up to 10,000 points: the map of the test codes looks the same, in 6 s less.
        return umap_embedding(codes, 2, 15, seed, n_epochs=100)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(codes)
    return TSNE(n_components=2, random_state=seed, init="pca").fit_transform(codes)


def interpolate(z_start: torch.Tensor, z_end: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` codes on the straight line from each row of `z_start` to the same row of `z_end`: [rows*steps, D]."""
    t = torch.linspace(0, 1, steps, device=z_start.device).view(1, steps, 1)
    return (z_start.unsqueeze(1) * (1 - t) + z_end.unsqueeze(1) * t).reshape(-1, z_start.shape[1])


def manifold_grid(size: int) -> torch.Tensor:
    """A size x size grid of 2-D codes at evenly spaced quantiles of the N(0, 1) prior (Kingma & Welling)."""
    quantiles = torch.linspace(0.5 / size, 1 - 0.5 / size, size)
    values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles)
    row, col = torch.meshgrid(values.flip(0), values, indexing="ij")
    return torch.stack([col, row], dim=-1).reshape(-1, 2)
