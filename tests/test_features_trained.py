"""Extractors trained on the real training split: the in-domain encoder and VQ-VAE codes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthlens.data.dataset import ImageSet
from synthlens.errors import InputError
from synthlens.features import FeatureCache, NotFittedError, get_extractor


def _stripes(n: int, seed: int) -> ImageSet:
    """Class 0: horizontal stripes, class 1: vertical, random period, phase and noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    grid = np.arange(28, dtype=np.float64)
    period = rng.uniform(4, 9, n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    along = np.where(labels[:, None, None] == 0, grid[None, :, None], grid[None, None, :])
    wave = 0.5 + 0.4 * np.sin(2 * np.pi * along / period + phase)
    noisy = wave + rng.normal(0, 0.15, (n, 28, 28))
    images = (np.clip(noisy, 0, 1) * 255).astype(np.uint8)
    return ImageSet(images, labels, ("horizontal", "vertical"))


@pytest.fixture(scope="module")
def demo() -> tuple[ImageSet, ImageSet, ImageSet]:
    return _stripes(400, 0), _stripes(100, 1), _stripes(200, 2)


# ---------------------------------------------------------------------- domain
@pytest.fixture(scope="module")
def domain(demo):
    train, val, _ = demo
    return get_extractor("domain", epochs=2, width=8).fit(train, val=val, seed=0,
                                                          progress=False)


def test_domain_features_separate_the_classes(domain, demo) -> None:
    train, _, test = demo
    f_train, f_test = domain.extract(train), domain.extract(test)
    assert f_train.shape == (400, 32) and f_train.dtype == np.float32 and domain.dim == 32
    # 1-nearest-neighbour labels in the learned space, computed here with plain numpy.
    d = ((f_test[:, None, :] - f_train[None, :, :]) ** 2).sum(-1)
    accuracy = float((train.labels[d.argmin(1)] == test.labels).mean())
    chance = max(np.bincount(test.labels)) / len(test)
    assert accuracy > max(0.9, chance + 0.2), (accuracy, chance)


def test_domain_features_are_standardised_on_the_training_split(domain, demo) -> None:
    train, _, test = demo
    f_train = domain.extract(train).astype(np.float64)
    assert np.allclose(f_train.mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(f_train.std(axis=0)[f_train.std(axis=0) > 1e-3], 1.0, atol=1e-3)
    assert "standardised" in domain.preprocessing["output"]
    # The label-consistency judge is the encoder's own classifier.
    assert (domain.classifier.predict(test.images) == test.labels).mean() > 0.9


def test_domain_save_load_round_trip(domain, demo, tmp_path) -> None:
    train, _, test = demo
    path = tmp_path / "features" / "domain" / "extractor.pt"
    domain.save(path)
    loaded = get_extractor("domain", epochs=2, width=8).load(path)
    np.testing.assert_array_equal(loaded.extract(test), domain.extract(test))
    assert loaded.weights_sha256 == domain.weights_sha256
    assert loaded.describe() == domain.describe()
    assert loaded.describe()["training"]["train_sha256"] == train.sha256()
    # The saved file loads with weights_only=True: plain tensors and containers only.
    torch.load(path, weights_only=True)


def test_domain_is_deterministic_and_hash_tracks_the_fit(domain, demo) -> None:
    train, val, _ = demo
    again = get_extractor("domain", epochs=2, width=8).fit(train, val=val, seed=0,
                                                           progress=False)
    assert again.weights_sha256 == domain.weights_sha256
    other = get_extractor("domain", epochs=2, width=8).fit(train, val=val, seed=1,
                                                           progress=False)
    assert other.weights_sha256 != domain.weights_sha256
    assert other.cache_key() != domain.cache_key()


def test_domain_fit_without_val_holds_out_part_of_train(demo) -> None:
    train, _, _ = demo
    extractor = get_extractor("domain", epochs=1, width=4).fit(train, seed=0, progress=False)
    assert extractor.extract(train.images[:3]).shape == (3, 16)


def test_domain_errors(domain, tmp_path) -> None:
    with pytest.raises(InputError, match=r"unknown option\(s\) \['bogus'\]"):
        get_extractor("domain", bogus=1)
    assert get_extractor("domain", arch="resnet18", width=4).dim == 32
    unfitted = get_extractor("domain")
    with pytest.raises(NotFittedError):
        unfitted.extract(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(NotFittedError):
        _ = unfitted.weights_sha256
    with pytest.raises(InputError, match="trained on"):
        domain.extract(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(InputError, match="not found"):
        unfitted.load(tmp_path / "missing.pt")


def test_domain_features_cache_per_fit(domain, demo, tmp_path) -> None:
    _, _, test = demo
    cache = FeatureCache(tmp_path)
    first = cache.get(domain, test)
    assert cache.extractions == 1
    again = FeatureCache(tmp_path)
    np.testing.assert_array_equal(again.get(domain, test), first)
    assert again.extractions == 0


# ---------------------------------------------------------------------- VQ-VAE codes
@pytest.fixture(scope="module")
def vqvae(demo):
    train, _, _ = demo
    return get_extractor("vqvae_codes", steps=15, batch_size=16, channels=16, res_channels=8,
                         n_res_blocks=1, num_codes=16, code_dim=8).fit(train, seed=0,
                                                                       progress=False)


def test_vqvae_codes_are_nearest_codebook_entries(vqvae, demo) -> None:
    _, _, test = demo
    images = test.images[:20]
    codes = vqvae.extract(images)
    # 28 px is padded to 32: a 4x4 top map and an 8x8 bottom map.
    assert codes.shape == (20, 16 + 64) and codes.dtype == np.int32
    assert vqvae.dim == 80 and vqvae.distance == "hamming"
    assert codes.min() >= 0 and codes.max() < 16

    # The top codes recomputed here: the encoder output's nearest codebook vector.
    from synthlens.data.tensors import pad_to

    net = vqvae.network.eval()
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)[:, None]
    with torch.no_grad():
        z = net.quant_conv_t(net.enc_t(net.enc_b(pad_to(x, 32))))
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    nearest = torch.cdist(flat, net.quantize_t.embedding).argmin(1).reshape(20, 16)
    agree = (nearest.numpy() == codes[:, :16]).mean()
    assert agree > 0.99  # float ties aside


def test_vqvae_codes_save_load_and_levels(vqvae, demo, tmp_path) -> None:
    _, _, test = demo
    path = tmp_path / "extractor.pt"
    vqvae.save(path)
    options = {"steps": 15, "batch_size": 16, "channels": 16, "res_channels": 8,
               "n_res_blocks": 1, "num_codes": 16, "code_dim": 8}
    loaded = get_extractor("vqvae_codes", **options).load(path)
    codes = vqvae.extract(test.images[:10])
    np.testing.assert_array_equal(loaded.extract(test.images[:10]), codes)
    assert loaded.weights_sha256 == vqvae.weights_sha256
    assert loaded.cache_key() == vqvae.cache_key()
    top = get_extractor("vqvae_codes", levels="top", **options).load(path)
    np.testing.assert_array_equal(top.extract(test.images[:10]), codes[:, :16])
    assert top.cache_key() != vqvae.cache_key()
    with pytest.raises(InputError, match="levels"):
        get_extractor("vqvae_codes", levels="middle")


def test_vqvae_codes_fit_is_deterministic_and_leaves_global_rng_alone(vqvae, demo) -> None:
    train, _, _ = demo
    torch.manual_seed(5)
    before = torch.get_rng_state()
    again = get_extractor("vqvae_codes", steps=15, batch_size=16, channels=16, res_channels=8,
                          n_res_blocks=1, num_codes=16, code_dim=8).fit(train, seed=0,
                                                                        progress=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert again.weights_sha256 == vqvae.weights_sha256


def test_vqvae_codes_load_the_generator_files_earlier_versions_saved(demo, tmp_path) -> None:
    """Run folders made before the extractor trained its own autoencoder hold a ``vqvae2``
    generator file (and a ``.json`` note): produced here by that generator, as then."""
    from synthlens.generators import VQVAE2, Budget
    from synthlens.io import write_json

    train, _, test = demo
    gen = VQVAE2(channels=16, res_channels=8, n_res_blocks=1, num_codes=16, code_dim=8,
                 prior_channels=8, prior_layers=1, prior_layers_bottom=1, prior_kernel=3)
    budget = Budget(steps=6, batch_size=16, lr=3e-4, checkpoint_every=6, log_every=3,
                    stage_fractions={"top_prior": 0.0, "bottom_prior": 0.0},
                    options={"stage_batch_sizes": {"top_prior": 2, "bottom_prior": 2}})
    gen.fit(train, budget, seed=0, progress=False)
    path = tmp_path / "extractor.pt"
    gen.save(path)
    write_json(str(path) + ".json", {"train_sha256": train.sha256(), "seed": 0})
    loaded = get_extractor("vqvae_codes", steps=6, batch_size=16, channels=16, res_channels=8,
                           n_res_blocks=1, num_codes=16, code_dim=8).load(path)
    top, bottom = gen.encode_codes(test.images[:12])
    np.testing.assert_array_equal(loaded.extract(test.images[:12]),
                                  np.concatenate([top.reshape(12, -1), bottom.reshape(12, -1)],
                                                 axis=1))
    assert loaded.describe()["training"]["train_sha256"] == train.sha256()
    assert loaded.dim == 80
    with pytest.raises(InputError, match="not a synthlens vqvae_codes file"):
        torch.save({"format_version": 99}, tmp_path / "other.pt")
        loaded.load(tmp_path / "other.pt")
