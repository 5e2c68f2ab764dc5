"""On a CUDA GPU: the training step, the fused Adam call and bf16 autocast agree with the CPU's; training
resumes across devices; every stage runs on CUDA and what it trained loads on a CPU. Marked `cuda`:
skipped where there is no CUDA GPU (bench/gpu_check.sh runs them on one)."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO_ROOT, every_stage_run, run_command, run_stage_script
from test_resume import CHECKPOINT, EPOCHS, make_workdir, run_train
from vaepipe.anomaly.cli import main as anomaly
from vaepipe.codecs.cli import compress, decompress
from vaepipe.core.artifacts import load_tensors
from vaepipe.core.params import load_params
from vaepipe.core.runtime import autocast, compute_dtype, make_deterministic
from vaepipe.vae.evaluation import likelihood_bounds
from vaepipe.vae.gradients import ELBOGradient
from vaepipe.vae.model import VAE, VAEConfig, load_model
from vaepipe.vae.objectives import negative_bound
from vaepipe.vae.training import Trainer, fused_adam_step

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
# Stages that only read what others trained (the rest train: train, judge, style).
READING_STAGES = ("evaluate", "cluster", "generate", "downstream", "compress", "lossy", "corrupt", "anomaly", "explore")


def batch(n: int = 64, latent_dim: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(n, 784, generator=gen) > 0.6).float(), torch.randn(n, latent_dim, generator=gen), \
        torch.arange(n) % 10


def gradients_of(model: VAE, x, noise, labels, hand_written: bool, dtype=torch.float32) -> tuple[torch.Tensor, list]:
    """One training step's (loss, recon, kl) and parameter gradients, as the Trainer computes them on x's device."""
    model.zero_grad(set_to_none=False)
    if hand_written:
        losses = ELBOGradient(model, dtype)(x, noise, 0.7, labels if model.config.classes else None)
    else:
        with autocast(dtype, x.device):
            loss, recon, kl = negative_bound(model, x, noise.unsqueeze(0), 0.7, "elbo")
        loss.backward()
        losses = torch.stack([loss, recon, kl]).detach()
    return losses.cpu(), [p.grad.cpu() for p in model.parameters()]


MODELS = {"mlp (hand-written)": (VAEConfig(arch="mlp", latent_dim=8, hidden=(256, 128)), True),
          "conditional mlp (hand-written)": (VAEConfig(arch="mlp", latent_dim=8, hidden=(128,), classes=10), True),
          "conv (autograd)": (VAEConfig(arch="conv", latent_dim=8, hidden=(8, 16)), False),
          "mog prior (autograd)": (VAEConfig(arch="mlp", latent_dim=8, hidden=(64,), prior="mog",
                                             prior_components=5), False)}


@pytest.mark.parametrize("name", MODELS)
def test_a_training_step_on_cuda_equals_the_cpu_one(name):
    """The same weights, images and noise: the float32 step on CUDA gives the CPU's losses and gradients, up to
    the order of float32 sums (and cuDNN's convolution algorithms)."""
    config, hand_written = MODELS[name]
    torch.manual_seed(0)
    cpu_model = VAE(config)
    cuda_model = copy.deepcopy(cpu_model).to(CUDA)
    x, noise, labels = batch()
    cpu_losses, cpu_grads = gradients_of(cpu_model, x, noise, labels, hand_written)
    cuda_losses, cuda_grads = gradients_of(cuda_model, x.to(CUDA), noise.to(CUDA), labels.to(CUDA), hand_written)
    torch.testing.assert_close(cuda_losses, cpu_losses, rtol=1e-4, atol=1e-4)
    for (param, _), cpu_grad, cuda_grad in zip(cpu_model.named_parameters(), cpu_grads, cuda_grads):
        assert (cuda_grad - cpu_grad).norm() <= 1e-3 * cpu_grad.norm() + 1e-6, param


def test_the_fused_adam_call_on_cuda_is_adam_step():
    """The Trainer's direct call of the fused kernel against Adam(fused=True).step on the GPU (bit for bit), and
    against the CPU's plain Adam (to float32 rounding)."""
    torch.manual_seed(0)
    start = torch.randn(1000)
    ours, fused, plain = (start.clone().to(device).requires_grad_(True) for device in (CUDA, CUDA, CPU))
    optimizers = [torch.optim.Adam([ours], lr=1e-2, fused=True), torch.optim.Adam([fused], lr=1e-2, fused=True),
                  torch.optim.Adam([plain], lr=1e-2)]
    for lr in (1e-2, 5e-3, 1e-3, 1e-4):
        grad = torch.randn(1000)
        for param, optimizer in zip((ours, fused, plain), optimizers):
            param.grad = grad.to(param.device)
            optimizer.param_groups[0]["lr"] = lr
        fused_adam_step(optimizers[0])
        optimizers[1].step()
        optimizers[2].step()
        assert torch.equal(ours, fused)
        torch.testing.assert_close(ours.detach().cpu(), plain.detach(), rtol=1e-5, atol=1e-6)
    state = optimizers[0].state[ours]
    assert state["step"].device.type == "cuda" and state["step"].item() == 4


@pytest.mark.parametrize("name", ["mlp (hand-written)", "conv (autograd)"])
def test_bf16_autocast_on_cuda_agrees_with_float32_and_keeps_float32_state(name):
    """auto picks bf16 on a GPU of compute capability 8 or more; the step then agrees with float32's within the
    bf16 tolerance of tests/test_gradients.py (losses 0.5 %, gradients 5 % of their norm), and training keeps
    float32 weights and Adam moments, the same bytes twice."""
    assert compute_dtype("auto", CUDA) == (torch.bfloat16 if torch.cuda.get_device_capability()[0] >= 8
                                           else torch.float32)
    config, hand_written = MODELS[name]
    torch.manual_seed(0)
    model = VAE(config).to(CUDA)
    x, noise, labels = (t.to(CUDA) for t in batch())
    fp32_losses, fp32_grads = gradients_of(model, x, noise, labels, hand_written)
    bf16_losses, bf16_grads = gradients_of(model, x, noise, labels, hand_written, torch.bfloat16)
    torch.testing.assert_close(bf16_losses, fp32_losses, rtol=5e-3, atol=0)
    assert not torch.equal(bf16_losses, fp32_losses)  # it did compute in bf16
    for g32, g16 in zip(fp32_grads, bf16_grads):
        assert g16.dtype == torch.float32 and (g16 - g32).norm() <= 0.05 * g32.norm()

    params = dataclasses.replace(load_params(REPO_ROOT / "params.yaml").train, arch=config.arch,
                                 hidden=config.hidden, epochs=1, precision="bf16")
    images = torch.rand(1024, 784, generator=torch.Generator().manual_seed(1)).to(CUDA)
    runs = []
    for _ in range(2):
        make_deterministic(0)
        trainer = Trainer(VAE(VAEConfig.from_params(8, params)).to(CUDA), images, params, seed=0)
        stats = trainer.run_epoch()
        adam = trainer.optimizer.state_dict()["state"][0]
        runs.append((stats, trainer.flat_params.detach().cpu(), adam["exp_avg_sq"].cpu()))
    (stats, weights, moments), again = runs
    assert weights.dtype == moments.dtype == torch.float32
    assert stats == again[0] and torch.equal(weights, again[1]) and torch.equal(moments, again[2])


def test_the_likelihood_bound_on_cuda_equals_the_cpu_one():
    """The evaluate stage's estimator with the same noise on both devices, float32 and bf16 passes."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=(256, 128)))
    x, _, _ = batch(32)
    noise = torch.randn(50, 8, generator=torch.Generator().manual_seed(2))
    cpu = likelihood_bounds(model, x, 50, None, shared_noise=noise).nll
    cuda_model = copy.deepcopy(model).to(CUDA)
    for dtype, tolerance in ((torch.float32, 1e-4), (torch.bfloat16, 5e-3)):
        with autocast(dtype, CUDA):
            cuda = likelihood_bounds(cuda_model, x.to(CUDA), 50, None, shared_noise=noise).nll.cpu()
        torch.testing.assert_close(cuda, cpu, rtol=tolerance, atol=0)


def set_device(workdir: Path, device: str) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["device"] = device
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_training_cut_short_on_one_device_resumes_on_the_other(mnist_raw, tmp_path, first, then):
    """Killed while writing its second checkpoint, the train stage leaves the first; run again on the other device,
    it goes on from there with the saved weights and Adam state (its noise from a seed of its own: a CPU and a
    CUDA generator do not share states), and finishes every epoch."""
    workdir = make_workdir(tmp_path / "repo", mnist_raw)
    set_device(workdir, first)
    killed = run_train(workdir, kill=("checkpoint-write", 2))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    meta = json.loads(load_tensors(workdir / CHECKPOINT)[1]["meta"])
    assert meta["device"] == first and meta["epoch"] == 1
    set_device(workdir, then)
    finished = run_train(workdir)
    assert finished.returncode == 0, finished.stderr
    assert (f"resuming from {CHECKPOINT} after epoch 1 of {EPOCHS} (saved on {first}, going on on {then} "
            "with fresh noise)") in finished.stdout
    lines = (workdir / "metrics" / "train" / "plots" / "metrics" / "val" / "neg_elbo.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    assert [row[0] for row in rows] == [str(e) for e in range(1, EPOCHS + 1)]
    # Epoch 1 as the first device scored it, replayed from the checkpoint; then training went on and improved.
    assert float(rows[0][-1]) == pytest.approx(meta["history"][0][1]["neg_elbo"], rel=1e-6)
    assert float(rows[-1][-1]) < float(rows[0][-1])
    model = load_model(str(workdir / "models" / "vae.safetensors"), CPU)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory, mnist_raw, fashion_raw) -> Path:
    """Every stage run on the GPU, with the tiny params."""
    return every_stage_run(tmp_path_factory, mnist_raw, fashion_raw, "cuda-run", {"device": "cuda"})


def test_every_stage_runs_on_cuda(cuda_run):
    train = json.loads((cuda_run / "metrics" / "train" / "metrics.json").read_text())
    evaluate = json.loads((cuda_run / "metrics" / "evaluate.json").read_text())
    assert train["kept_epoch"] == 1 and 0 < evaluate["test_nll"] < 600  # one epoch on 500 images
    for stage in ("evaluate", "generate", "style", "downstream", "cluster", "compress", "lossy", "anomaly"):
        assert (cuda_run / "metrics" / f"{stage}.json").is_file(), stage
    assert (cuda_run / "plots" / "explorer" / "index.html").is_file()


def test_every_stage_and_command_reads_cuda_trained_models_on_a_cpu(cuda_run, tmp_path, monkeypatch, capsys):
    """A copy of the GPU run with `device: cpu`: every stage that reads the trained models runs, the CPU-only
    codecs give the GPU run's bytes, and the commands work with those models."""
    workdir = tmp_path / "repo"
    shutil.copytree(cuda_run, workdir)
    set_device(workdir, "cpu")
    monkeypatch.chdir(workdir)
    for stage in READING_STAGES:
        run_stage_script(stage)
    for stage in ("compress", "lossy"):  # these code on the CPU whatever `device` says
        assert (workdir / "metrics" / f"{stage}.json").read_bytes() == (cuda_run / "metrics" / f"{stage}.json").read_bytes()
    cpu_nll = json.loads((workdir / "metrics" / "evaluate.json").read_text())["test_nll"]
    cuda_nll = json.loads((cuda_run / "metrics" / "evaluate.json").read_text())["test_nll"]
    assert cpu_nll == pytest.approx(cuda_nll, rel=0.02)  # other noise draws, k = 5

    images = (torch.rand(5, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).to(torch.uint8) * 255
    np.save(workdir / "digits.npy", images.numpy())
    assert run_command(capsys, compress, workdir / "digits.npy")[0] == 0
    assert run_command(capsys, decompress, workdir / "digits.npy.vbb", "-o", workdir / "back.npy")[0] == 0
    assert np.array_equal(np.load(workdir / "back.npy"), images.numpy())
    code, out, err = run_command(capsys, anomaly, workdir / "digits.npy")
    assert code == 0 and len(out) >= 5, err
