import os
import subprocess
import sys

import pytest
import torch

from vaepipe.core import runtime
from vaepipe.core.artifacts import save_weights
from vaepipe.core.errors import ArtifactError, PipelineError
from vaepipe.core.runtime import select_device
from vaepipe.vae.model import VAE, VAEConfig, load_model


def canonical() -> VAE:
    return VAE(VAEConfig(arch="mlp", latent_dim=20, hidden=(400,)))


def test_canonical_recipe_is_expressible_by_params():
    """784-400-20-400-784, as in pytorch/examples vae/main.py: 652,824 parameters."""
    model = canonical()
    assert sum(p.numel() for p in model.parameters()) == 652_824
    shapes = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert shapes == [(400, 784), (40, 400), (400, 20), (784, 400)]


def test_shapes_of_a_deeper_arch():
    model = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=(256, 128)))
    mu, logvar = model.encode(torch.rand(5, 784))
    assert mu.shape == logvar.shape == (5, 8) and model.decode(mu).shape == (5, 784)
    assert model.decode(torch.randn(3, 5, 8)).shape == (3, 5, 784)  # samples of z as leading dims


@pytest.mark.parametrize("gpu", [True, False])
def test_auto_device_follows_cuda_and_missing_cuda_is_refused(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert select_device("auto") == torch.device("cuda" if gpu else "cpu")
    assert select_device("cpu") == torch.device("cpu")
    if gpu:
        assert select_device("cuda") == torch.device("cuda")
    else:
        with pytest.raises(PipelineError, match="`device` is cuda but no CUDA GPU is available"):
            select_device("cuda")


@pytest.mark.parametrize("fast", [True, False])
def test_precision_auto_is_bf16_exactly_where_the_hardware_has_it(monkeypatch, fast):
    monkeypatch.setattr(runtime, "has_fast_bf16", lambda device: fast)
    cpu = torch.device("cpu")
    assert runtime.compute_dtype("auto", cpu) == (torch.bfloat16 if fast else torch.float32)
    assert runtime.compute_dtype("fp32", cpu) == torch.float32 and runtime.compute_dtype("bf16", cpu) == torch.bfloat16
    # What the anomaly detector records: never "auto", always the precision auto stood for.
    assert runtime.resolved_precision("auto", cpu) == ("bf16" if fast else "fp32")
    assert runtime.resolved_precision("fp32", cpu) == "fp32" and runtime.resolved_precision("bf16", cpu) == "bf16"


def test_weights_round_trip(tmp_path):
    model = canonical()
    path = tmp_path / "vae.safetensors"
    save_weights(path, model.state_dict(), model.config.to_dict())
    loaded = load_model(str(path), torch.device("cpu"))
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_truncated_weights_are_refused(tmp_path):
    model = canonical()
    path = tmp_path / "vae.safetensors"
    save_weights(path, model.state_dict(), model.config.to_dict())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="not a readable vaepipe model file"):
        load_model(str(path), torch.device("cpu"))


def test_weights_of_another_architecture_are_refused(tmp_path):
    model = canonical()
    path = tmp_path / "vae.safetensors"
    wrong = dict(model.config.to_dict(), hidden=[300])
    save_weights(path, model.state_dict(), wrong)
    with pytest.raises(ArtifactError, match="weights do not fit the model"):
        load_model(str(path), torch.device("cpu"))


def test_pickle_is_never_unpickled(tmp_path):
    path = tmp_path / "vae.safetensors"
    marker = tmp_path / "executed"
    import pickle

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ArtifactError):
        load_model(str(path), torch.device("cpu"))
    assert not marker.exists()


def test_kernels_lowered_to_avx2_take_fp32_for_auto():
    """ATEN_CPU_CAPABILITY=avx2 (docs/reproducibility.md: approximating an AVX2 CPU) leaves bf16 emulated: auto is
    fp32 there, as on a real AVX2 CPU, even where the hardware has AVX-512 BF16 or AMX."""
    code = ("import torch; from vaepipe.core import runtime; "
            "print(runtime.cpu_class(), runtime.resolved_precision('auto', torch.device('cpu')))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["AVX2", "fp32"]
