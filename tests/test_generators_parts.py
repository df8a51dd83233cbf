"""The building blocks of the generator families, each against an independent computation:
noise schedules and DDIM, the EMA vector quantiser, causality of the autoregressive
priors, modulated convolution, padding, the UNet, sample grids and the harness helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from synthlens.data.tensors import crop_to, pad_to, working_size
from synthlens.device import autocast
from synthlens.generators.base import Budget, counts_per_class
from synthlens.generators.blocks import next_power_of_two
from synthlens.generators.dcgan import doublings
from synthlens.generators.pixelcnn import GatedPixelCNN
from synthlens.generators.schedulers import NoiseSchedule, ddim_sample, guided_eps
from synthlens.generators.stylegan2 import ModulatedConv2d, _fir_down, _up
from synthlens.generators.transformer import CodeTransformer
from synthlens.generators.unet import ConditionalUNet
from synthlens.nets.quantizer import VectorQuantizer


# ----------------------------------------------------------------------------- schedules
def test_beta_schedules_match_their_definitions() -> None:
    linear = NoiseSchedule(1000, 1e-4, 0.02, "linear")
    assert linear.betas[0].item() == pytest.approx(1e-4)
    assert linear.betas[-1].item() == pytest.approx(0.02)
    assert linear.betas[1].item() - linear.betas[0].item() == pytest.approx(
        (0.02 - 1e-4) / 999, rel=1e-4)
    # The study's LDM schedule: linear in sqrt(beta) from 0.0015 to 0.0195.
    ldm = NoiseSchedule(1000, 0.0015, 0.0195, "scaled_linear")
    assert ldm.betas[0].item() == pytest.approx(0.0015)
    assert ldm.betas[-1].item() == pytest.approx(0.0195)
    mid = (math.sqrt(0.0015) + (math.sqrt(0.0195) - math.sqrt(0.0015)) * 500 / 999) ** 2
    assert ldm.betas[500].item() == pytest.approx(mid, rel=1e-5)
    expected = np.cumprod(1 - ldm.betas.double().numpy())
    np.testing.assert_allclose(ldm.alphas_cumprod.numpy(), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="beta_schedule"):
        NoiseSchedule(beta_schedule="quadratic")


def test_add_noise_and_timesteps() -> None:
    sched = NoiseSchedule(1000)
    x0, noise = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    t = torch.tensor([0, 999])
    out = sched.add_noise(x0, noise, t)
    for i, ti in enumerate(t.tolist()):
        a = sched.alphas_cumprod[ti].item()
        assert out[i].flatten()[0].item() == pytest.approx(math.sqrt(a) + 2 * math.sqrt(1 - a))
    assert sched.inference_timesteps(4) == [999, 749, 499, 249]
    assert sched.inference_timesteps(1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError):
        sched.inference_timesteps(0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_recovers_a_point_mass_with_the_exact_eps(eta: float) -> None:
    """For data concentrated on one point x*, eps(x_t) = (x_t - sqrt(abar) x*) /
    sqrt(1 - abar) is the exact score; DDIM (any eta) must land on x*."""
    sched = NoiseSchedule(1000, 0.0015, 0.0195, "scaled_linear")
    target = torch.linspace(-0.8, 0.8, 16).view(1, 1, 4, 4)

    def oracle(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * target) / (1 - a).sqrt()

    out = ddim_sample(oracle, sched, (3, 1, 4, 4), torch.zeros(3, dtype=torch.long),
                      null_label=1, generator=torch.Generator().manual_seed(0),
                      num_inference_steps=10, eta=eta, clip_sample=False)
    torch.testing.assert_close(out, target.expand(3, -1, -1, -1), atol=1e-4, rtol=0)


def test_guided_eps_combines_conditional_and_unconditional() -> None:
    def model(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y.float().view(-1, 1) * torch.ones_like(x)  # eps = label value

    x, t = torch.zeros(2, 3), torch.zeros(2, dtype=torch.long)
    y = torch.tensor([1, 1])
    # null label 5: eps_u = 5, eps_c = 1; s = 2 -> 5 + 2 (1 - 5) = -3
    assert guided_eps(model, x, t, y, 5, 2.0).unique().item() == -3.0
    assert guided_eps(model, x, t, y, 5, 1.0).unique().item() == 1.0
    assert guided_eps(model, x, t, y, 5, 0.0).unique().item() == 5.0


# ----------------------------------------------------------------------------- quantiser
def test_quantiser_assigns_nearest_codes_and_passes_gradients() -> None:
    vq = VectorQuantizer(6, 3, dead_threshold=0.0).eval()
    codebook = torch.randn(6, 3)
    vq.embedding.copy_(codebook)
    z = torch.randn(2, 3, 4, 5, requires_grad=True)
    out, commit, codes = vq(z)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    brute = np.argmin(((flat[:, None] - codebook.numpy()[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(codes.flatten().numpy(), brute)
    torch.testing.assert_close(out, codebook[codes].permute(0, 3, 1, 2))
    expected = 0.25 * ((flat - codebook.numpy()[brute]) ** 2).mean()
    assert commit.item() == pytest.approx(expected, rel=1e-5)
    out.sum().backward()  # straight-through: d out / d z = identity
    torch.testing.assert_close(z.grad, torch.ones_like(z))


def test_quantiser_ema_update_by_hand() -> None:
    vq = VectorQuantizer(2, 1, decay=0.5, dead_threshold=0.0, eps=0.0)
    vq.embedding.copy_(torch.tensor([[0.0], [10.0]]))
    vq.cluster_size.copy_(torch.tensor([2.0, 2.0]))
    vq.embed_sum.copy_(torch.tensor([[0.0], [20.0]]))
    vq.train()
    vq(torch.tensor([1.0, 3.0, 9.0]).view(1, 1, 1, 3))  # codes 0, 0, 1
    # cluster sizes 0.5*2 + 0.5*{2, 1} = {2, 1.5}; sums 0.5*{0, 20} + 0.5*{4, 9}
    torch.testing.assert_close(vq.cluster_size, torch.tensor([2.0, 1.5]))
    torch.testing.assert_close(vq.embedding, torch.tensor([[2.0 / 2.0], [14.5 / 1.5]]))


def test_quantiser_restarts_dead_codes_from_the_batch() -> None:
    vq = VectorQuantizer(4, 2).train()
    z = torch.randn(1, 2, 3, 3)
    vq(z)  # all entries start unused, so all restart on batch vectors
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for row in vq.embedding:
        assert torch.isclose(flat, row).all(dim=1).any()


# ----------------------------------------------------------------------------- priors
def _causality(prior: torch.nn.Module, shape: tuple[int, int], **cond: torch.Tensor) -> None:
    torch.manual_seed(0)
    codes = torch.randint(0, 7, (1, *shape))
    labels = torch.zeros(1, dtype=torch.long)
    base = prior(codes, labels, **cond)
    h, w = shape
    for pos in (0, w + 1, h * w - 1):
        changed = codes.clone()
        changed.view(-1)[pos] = (changed.view(-1)[pos] + 1) % 7
        diff = (prior(changed, labels, **cond) - base).abs().sum(1).view(-1)
        assert diff[:pos + 1].max() == 0, "a position sees itself or a later one"
        if pos + 1 < h * w:
            assert diff[pos + 1:].max() > 0  # and later positions do see it


def test_pixelcnn_is_causal_in_raster_order() -> None:
    _causality(GatedPixelCNN(7, dim=8, n_layers=3, kernel=3, n_classes=2).eval(), (5, 5))
    bottom = GatedPixelCNN(7, dim=8, n_layers=3, kernel=3, n_classes=2, cond_codes=5).eval()
    _causality(bottom, (4, 4), cond_codes=torch.randint(0, 5, (1, 2, 2)))


def test_transformer_is_causal_and_cached_sampling_matches_forward() -> None:
    prior = CodeTransformer(7, (4, 4), dim=16, n_layers=2, n_classes=2, cond_codes=5,
                            cond_shape=(2, 2)).eval()
    top = torch.randint(0, 5, (3, 2, 2))
    _causality(prior, (4, 4), cond_codes=top[:1])
    labels = torch.tensor([0, 1, 1])
    greedy = prior.sample(labels, (4, 4), generator=torch.Generator(), cond_codes=top,
                          temperature=1e-6)
    np.testing.assert_array_equal(prior(greedy, labels, cond_codes=top).argmax(1), greedy)


# ----------------------------------------------------------------------------- StyleGAN2
def test_modulated_conv_equals_per_sample_weights() -> None:
    """The official grouped-convolution form: w'_ijk = s_i w_ijk, then
    w''_ijk = w'_ijk / sqrt(sum_ik w'^2 + eps)."""
    torch.manual_seed(0)
    layer = ModulatedConv2d(3, 5, 3, w_dim=4)
    x, w = torch.randn(2, 3, 6, 6), torch.randn(2, 4)
    styles = layer.affine(w)
    ref = []
    for i in range(2):
        weight = layer.weight * layer.scale * styles[i].view(1, -1, 1, 1)
        weight = weight / (weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        ref.append(F.conv2d(x[i:i + 1], weight, padding=1))
    torch.testing.assert_close(layer(x, w), torch.cat(ref), atol=1e-5, rtol=1e-4)


def test_fir_resampling_uses_the_1331_filter() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 64.0
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    down = _fir_down(x)[0, 0]
    # output (i, j) covers inputs 2i-1 .. 2i+2: the impulse at 4 sits at offset 1 or 2
    assert down[2, 2].item() == pytest.approx(k[1] * k[1])
    assert down[1, 1].item() == pytest.approx(k[3] * k[3])
    assert down.sum().item() == pytest.approx(64.0 / 4)  # a 2×2 sum-preserving average
    up = _up(torch.ones(1, 1, 4, 4))
    torch.testing.assert_close(up, torch.ones(1, 1, 8, 8))


# ----------------------------------------------------------------------------- blocks
def test_padding_cropping_and_sizes() -> None:
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).view(2, 1, 28, 28)
    padded = pad_to(x, 32)
    assert padded.shape == (2, 1, 32, 32)
    torch.testing.assert_close(crop_to(padded, 28), x)
    assert working_size(28, 8) == 32 and working_size(28, 4) == 28
    assert next_power_of_two(28) == 32 and next_power_of_two(64) == 64
    assert [doublings(s) for s in (28, 32, 64, 12)] == [2, 3, 4, 1]


@pytest.mark.parametrize(("size", "mults"), [(28, (1, 2, 2)), (32, (1, 2, 2, 2)), (8, (1, 2))])
def test_unet_shapes(size: int, mults: tuple[int, ...]) -> None:
    net = ConditionalUNet(3, 3, 4, base_channels=8, channel_mults=mults, num_res_blocks=1,
                          attention_levels=(1,))
    x = torch.randn(2, 3, size, size)
    out = net(x, torch.tensor([0, 999]), torch.tensor([0, 4]))  # 4 = the null class
    assert out.shape == x.shape
    assert out.abs().max() == 0  # zero-initialised output layer


# ----------------------------------------------------------------------------- harness
def test_budget_helpers() -> None:
    budget = Budget(steps=100, batch_size=32, stage_fractions={"prior": 0.5},
                    options={"stage_batch_sizes": {"prior": 8}})
    assert budget.stage_steps("prior") == 50 and budget.stage_steps("main") == 100
    assert budget.stage_batch_size("prior") == 8 and budget.stage_batch_size("main") == 32
    assert counts_per_class(3, 2).tolist() == [3, 3]
    with pytest.raises(ValueError):
        counts_per_class([1, -1], 2)
    with autocast("cpu"):  # no autocast on the CPU: bit-reproducible float32
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
