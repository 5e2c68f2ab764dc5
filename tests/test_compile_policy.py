"""torch.compile only where it pays: a run compiles when it makes at least COMPILE_MIN_IMAGE_PASSES image passes
(vaepipe.core.runtime.compiling_if_worth_it), unless VAEPIPE_COMPILE says always or never."""

import os
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO_ROOT
from vaepipe.core.errors import PipelineError
from vaepipe.core.runtime import COMPILE_ENV, COMPILE_MIN_IMAGE_PASSES, compiled, compiling_if_worth_it


@compiled(dynamic=True)
def one_if_compiled(x: torch.Tensor) -> torch.Tensor:
    return x + int(torch.compiler.is_compiling())  # a constant True in a traced graph


@pytest.mark.parametrize("choice, image_passes, compiles", [
    ("auto", COMPILE_MIN_IMAGE_PASSES - 1, False), ("auto", COMPILE_MIN_IMAGE_PASSES, True),
    ("never", 10 * COMPILE_MIN_IMAGE_PASSES, False), ("always", 1, True)])
def test_a_run_compiles_when_worth_it_or_told_to(monkeypatch, choice, image_passes, compiles):
    monkeypatch.setenv(COMPILE_ENV, choice)
    with compiling_if_worth_it(image_passes):
        assert one_if_compiled(torch.zeros(())).item() == int(compiles)
    assert one_if_compiled(torch.zeros(())).item() == 1  # outside, as before: compiled


def test_an_unknown_choice_is_refused(monkeypatch):
    monkeypatch.setenv(COMPILE_ENV, "sometimes")
    with pytest.raises(PipelineError, match="^VAEPIPE_COMPILE is 'sometimes'; use auto, always or never$"):
        with compiling_if_worth_it(1):
            pass


def test_the_default_run_trains_and_scores_compiled():
    """The default training and test-set NLL are the runs the benchmarks time compiled (docs/performance.md)."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    train, evaluate = params["train"], params["evaluate"]
    assert train["train_subset"] == 0 and evaluate["test_subset"] == 0  # MNIST's and Fashion-MNIST's 60,000 and 10,000
    assert (60_000 - train["val_size"]) * train["epochs"] * train["samples"] >= COMPILE_MIN_IMAGE_PASSES
    assert 10_000 * evaluate["k"] >= COMPILE_MIN_IMAGE_PASSES


def test_the_docs_state_the_threshold():
    assert f"{COMPILE_MIN_IMAGE_PASSES:,} image passes" in (REPO_ROOT / "docs/performance.md").read_text()


@pytest.mark.parametrize("lowered, own_cache_dir, where", [
    ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, None, "isa-avx2-avx2"),
    ({"ATEN_CPU_CAPABILITY": "avx2"}, None, "isa-avx2"),
    ({}, None, ""),  # the default place
    ({"ATEN_CPU_CAPABILITY": "avx2"}, "mine", "mine"),  # a place the user chose stays
])
def test_kernels_built_for_a_lowered_isa_are_cached_apart(monkeypatch, tmp_path, lowered, own_cache_dir, where):
    """Kernels built under ATEN_CPU_CAPABILITY=avx2, cached in TorchInductor's default place and reused without it,
    scored 74,998 nats where eager scoring gave 40,219 (vaepipe.vae.objectives.bernoulli_nll, 64 images)."""
    import tempfile

    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    from vaepipe.core.runtime import ISA_ENVS, _own_kernel_cache_for_a_lowered_isa

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the default place is
    for name in ISA_ENVS:
        monkeypatch.delenv(name, raising=False)
    for name, value in lowered.items():
        monkeypatch.setenv(name, value)
    default = default_cache_dir()
    # Importing TorchDynamo writes the default place into the environment.
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / own_cache_dir) if own_cache_dir else default)
    _own_kernel_cache_for_a_lowered_isa()
    expected = str(tmp_path / own_cache_dir) if own_cache_dir else str(Path(default, where)).rstrip("/")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == expected
