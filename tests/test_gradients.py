import pytest
import torch

from vaepipe.core.artifacts import load_weights, save_weights
from vaepipe.vae import gradients
from vaepipe.vae.gradients import BF16_MIN_WIDTH, ELBOGradient
from vaepipe.vae.model import VAE, VAEConfig
from vaepipe.vae.objectives import negative_bound
from vaepipe.vae.training import flatten_parameters, fused_adam_step

# Most of these compile the hand-written gradient (20 s from a cold cache) or take Adam steps with it.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("hidden", [(400,), (64, 32)])
@pytest.mark.parametrize("beta", [1.0, 0.3])
@pytest.mark.parametrize("binary", [True, False])
def test_elbo_gradient_matches_autograd(hidden, beta, binary):
    torch.manual_seed(0)
    reference = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=hidden))
    manual = VAE(reference.config)
    manual.load_state_dict(reference.state_dict())
    x = torch.rand(37, 784)
    if binary:
        x = (x > 0.5).float()
    noise = torch.randn(37, 8)

    expected = torch.stack(negative_bound(reference, x, noise.unsqueeze(0), beta, "elbo"))
    expected[0].backward()
    got = ELBOGradient(manual)(x, noise, beta)

    torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-4)
    for (name, p_ref), p_manual in zip(reference.named_parameters(), manual.parameters()):
        torch.testing.assert_close(p_manual.grad, p_ref.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_elbo_gradient_of_a_conditional_model_matches_autograd():
    torch.manual_seed(0)
    reference = VAE(VAEConfig(arch="mlp", latent_dim=4, hidden=(64, 32), classes=10))
    manual = VAE(reference.config)
    manual.load_state_dict(reference.state_dict())
    x, noise, labels = (torch.rand(37, 784) > 0.5).float(), torch.randn(37, 4), torch.arange(37) % 10

    expected = torch.stack(negative_bound(reference, x, noise.unsqueeze(0), 0.5, "elbo", labels))
    expected[0].backward()
    got = ELBOGradient(manual)(x, noise, 0.5, labels)

    torch.testing.assert_close(got, expected.detach(), rtol=1e-5, atol=1e-4)
    for (name, p_ref), p_manual in zip(reference.named_parameters(), manual.parameters()):
        torch.testing.assert_close(p_manual.grad, p_ref.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_elbo_gradient_refuses_an_unknown_layer_stack():
    model = VAE(VAEConfig(arch="mlp", latent_dim=4, hidden=(16,)))
    model.decoder.append(torch.nn.Sigmoid())
    with pytest.raises(ValueError, match="alternating Linear and ReLU"):
        ELBOGradient(model)


def test_flat_adam_steps_match_the_autograd_loop():
    """Three steps of the Trainer's update (flat parameters, fused Adam, manual gradient) against the textbook
    loop (autograd, per-tensor Adam): the same mathematics, so the same weights up to rounding."""
    torch.manual_seed(0)
    reference = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=(64, 32)))
    fast = VAE(reference.config)
    fast.load_state_dict(reference.state_dict())
    reference_opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    flat = flatten_parameters(fast)
    fast_opt = torch.optim.Adam([flat], lr=1e-2, fused=True)
    step = ELBOGradient(fast)
    for _ in range(3):
        x, noise = (torch.rand(50, 784) > 0.5).float(), torch.randn(50, 8)
        reference_opt.zero_grad()
        negative_bound(reference, x, noise.unsqueeze(0), 1.0, "elbo")[0].backward()
        reference_opt.step()
        step(x, noise, beta=1.0)
        fused_adam_step(fast_opt)
    for (name, p_ref), p_fast in zip(reference.named_parameters(), fast.parameters()):
        # Adam divides by |g|, so a gradient within rounding of 0 can move by a sizeable part of a step
        # (seen: 4e-5 of a 1e-2 step, for 1 weight in 50,000): compare at 1 % of the learning rate.
        torch.testing.assert_close(p_fast, p_ref, rtol=0, atol=1e-4, msg=name)
    assert p_fast.data_ptr() != p_ref.data_ptr()


def test_flattened_parameters_are_aligned_views_and_save_normally(tmp_path):
    model = VAE(VAEConfig(arch="mlp", latent_dim=3, hidden=(5,)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flat = flatten_parameters(model)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
        assert p.untyped_storage().data_ptr() == flat.untyped_storage().data_ptr()
        assert (p.data_ptr() - flat.data_ptr()) % 64 == 0, name
    flat.data.add_(1.0)  # an optimizer step on the flat tensor moves every parameter
    assert torch.equal(model.encoder[0].bias, before["encoder.0.bias"] + 1)
    save_weights(tmp_path / "m.safetensors", model.state_dict(), model.config.to_dict())
    state_dict, _ = load_weights(tmp_path / "m.safetensors")
    assert all(torch.equal(state_dict[k], v) for k, v in model.state_dict().items())


def test_bf16_step_agrees_with_the_float32_step():
    """The bf16 path rounds the weights, activations and gradients of the wide layers' matrix multiplies to 8
    significant bits (relative 2**-9 = 0.2 %); the thin layers into and out of z, the sums and the latent
    parameters stay float32. Stated tolerance: the losses within 0.5 % of float32's, every gradient within
    5 % of its norm (seen: 0.05 %, and 0.2-1.3 %)."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=(BF16_MIN_WIDTH,)))
    x, noise = (torch.rand(64, 784) > 0.7).float(), torch.randn(64, 8)
    fp32_losses = ELBOGradient(model, torch.float32)(x, noise, 1.0)
    fp32_grads = [p.grad.clone() for p in model.parameters()]
    step = ELBOGradient(model, torch.bfloat16)
    assert [layer.weight.dtype for layer in step.encoder + step.decoder] == [torch.bfloat16, torch.float32, torch.float32, torch.bfloat16]
    bf16_losses = step(x, noise, 1.0)
    assert bf16_losses.dtype == torch.float32
    torch.testing.assert_close(bf16_losses, fp32_losses, rtol=5e-3, atol=0)
    assert not torch.equal(bf16_losses, fp32_losses)  # it did compute in bf16
    for (name, p), g32 in zip(model.named_parameters(), fp32_grads):
        assert p.dtype == p.grad.dtype == torch.float32, name  # float32 master weights and gradients
        assert (p.grad - g32).norm() <= 0.05 * g32.norm(), name


def test_bf16_steps_train_float32_weights_and_adam_state_deterministically():
    def three_steps() -> tuple[torch.Tensor, dict]:
        torch.manual_seed(0)
        model = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=(BF16_MIN_WIDTH, 32)))
        flat = flatten_parameters(model)
        optimizer = torch.optim.Adam([flat], lr=1e-2, fused=True)
        step = ELBOGradient(model, torch.bfloat16)
        gen = torch.Generator().manual_seed(1)
        for _ in range(3):
            x, noise = (torch.rand(50, 784, generator=gen) > 0.5).float(), torch.randn(50, 8, generator=gen)
            step(x, noise, beta=1.0)
            optimizer.step()
        return flat, optimizer.state_dict()["state"][0]

    flat, adam = three_steps()
    assert flat.dtype == adam["exp_avg"].dtype == adam["exp_avg_sq"].dtype == torch.float32
    again, adam_again = three_steps()
    assert torch.equal(flat, again) and torch.equal(adam["exp_avg_sq"], adam_again["exp_avg_sq"])


def test_the_step_compiles_into_one_graph():
    """The whole step is one compiled graph: a graph break would put eager calls back into every step."""
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        model = VAE(VAEConfig(arch="mlp", latent_dim=8, hidden=(BF16_MIN_WIDTH, 32), classes=10))
        flatten_parameters(model)
        step = ELBOGradient(model, dtype)
        x, noise, labels = (torch.rand(20, 784) > 0.5).float(), torch.randn(20, 8), torch.arange(20) % 10
        explained = torch._dynamo.explain(gradients._elbo_step.__wrapped__)(
            step.encoder, step.decoder, (step.params, step.grads, step.low_params, step.low_grads), x, noise,
            torch.tensor(0.5), labels, step.latent_dim, step.classes)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
