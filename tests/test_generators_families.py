"""Every generator family under the harness, on the ``smoke`` budget of budgets.yaml:
shapes, dtypes, class counts, determinism, save/load, resume after a crash, and the
family knobs (truncation, guidance, temperature)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from synthlens.data.dataset import ImageSet
from synthlens.data.demo import make_demo
from synthlens.generators import (
    GENERATORS,
    VQVAE2,
    Budget,
    Generator,
    get_generator,
    load_generator,
    truncation_sweep,
)

BUDGETS = Path(__file__).resolve().parents[1] / "src" / "synthlens" / "configs" / "budgets.yaml"
FAMILIES = ["cvae", "dcgan", "stylegan2", "vqvae2", "ldm", "ddpm"]


def smoke_budget(family: str, **changes: object) -> Budget:
    settings = dict(yaml.safe_load(BUDGETS.read_text())["smoke"]["generators"][family])
    settings.update(changes)
    return Budget.from_dict(settings)


@pytest.fixture(scope="module")
def grey28() -> ImageSet:
    """48 demo phantoms (28×28 grey), 24 per class."""
    train = make_demo(28).train
    idx = np.concatenate([np.flatnonzero(train.labels == c)[:24] for c in (0, 1)])
    return train.subset(idx)


@pytest.fixture(scope="module")
def fitted(grey28: ImageSet, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Generator]:
    """One smoke-budget fit per family, shared by the tests below."""
    out = {}
    for family in FAMILIES:
        workdir = tmp_path_factory.mktemp(family)
        out[family] = get_generator(family).fit(grey28, smoke_budget(family), seed=0,
                                                workdir=workdir, progress=False)
        out[family].workdir = workdir  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("name", ["smoke", "demo", "standard", "full"])
def test_every_family_is_registered_and_budgeted(name: str) -> None:
    """Every budget has every family, with known options, and its networks build at 28 px."""
    assert sorted(GENERATORS) == sorted(FAMILIES)
    budgets = yaml.safe_load(BUDGETS.read_text())
    for family in FAMILIES:
        budget = Budget.from_dict(budgets[name]["generators"][family])
        gen = get_generator(family)
        gen.check_options(budget)
        gen.image_shape, gen.class_names, gen.budget = (28, 28), ("a", "b"), budget
        gen._build(budget)


@pytest.mark.parametrize("family", FAMILIES)
def test_knobs_are_declared_once(family: str) -> None:
    """One dataclass per family names its knobs: the constructor, the budget options and
    the sample knobs are checked against it, and docs/generators.md lists them."""
    from dataclasses import fields

    from synthlens.generators.base import HarnessOptions

    cls = GENERATORS[family]
    knobs = [f.name for f in fields(cls.Knobs)]
    assert sorted(cls().params) == sorted(knobs)
    assert set(cls.sample_knobs()) <= set(knobs)
    options = {name: getattr(cls.Knobs(), name) for name in knobs}
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    budget = smoke_budget(family, options=options)
    cls().check_options(budget)  # every knob is a budget option, with its default's type
    assert cls(**options).knobs_for(budget) == cls.Knobs()
    accepted = ", ".join(sorted([*knobs, *fields_of(HarnessOptions)]))
    with pytest.raises(ValueError, match=re.escape(f"not_a_knob: unknown budget option of "
                                                   f"{family}; accepted: {accepted}")):
        cls().check_options(smoke_budget(family, options={"not_a_knob": 1}))
    with pytest.raises(TypeError, match=f"not_a_knob: unknown parameter of {family}"):
        cls(not_a_knob=1)
    # docs/generators.md: every knob in the family's section (ldm: those beyond ddpm's)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "generators.md").read_text()
    section = docs.split(f"### `{family}`", 1)[1].split("\n### ", 1)[0]
    own = set(knobs)
    if family == "ldm":
        own -= {f.name for f in fields(GENERATORS["ddpm"].Knobs)}
        assert "all `ddpm` knobs" in section
    missing = sorted(k for k in own if f"`{k}`" not in section)
    assert not missing, (family, missing)


def fields_of(cls: type) -> list[str]:
    from dataclasses import fields

    return [f.name for f in fields(cls)]


def test_knob_precedence_and_checks() -> None:
    """A constructor parameter wins over the budget's option, which wins over the default;
    bad values are refused when given, naming the knob."""
    from synthlens.generators import DCGAN, StyleGAN2

    budget = smoke_budget("dcgan")  # options: width 8, z_dim 32
    gen = DCGAN(width=16)
    assert gen.knobs_for(budget) == type(gen.knobs_for(budget))(z_dim=32, width=16, beta1=0.5)
    assert DCGAN().knobs_for(None).width == 64  # no budget: the default
    with pytest.raises(ValueError, match="width: expected an integer, got '8'"):
        DCGAN(width="8")
    with pytest.raises(ValueError, match=r"truncation: psi must lie in \[0, 1\]"):
        StyleGAN2(truncation=1.5)
    with pytest.raises(ValueError, match="noise_mode: 'static' is not a choice; accepted: "
                                         "'const', 'random', 'none'"):
        StyleGAN2().knobs_for(None, noise_mode="static")
    with pytest.raises(ValueError, match=r"options\.stage_batch_sizes\.prior: unknown stage"):
        DCGAN().check_options(smoke_budget("dcgan", options={"stage_batch_sizes":
                                                             {"prior": 8}}))


@pytest.mark.parametrize("family", FAMILIES)
def test_image_sizes_are_declared_and_checked_before_training(family: str) -> None:
    cls = GENERATORS[family]
    for shape in ((28, 28), (16, 16, 3), (64, 64)):
        cls.check_image_shape(shape)
    for shape in ((30, 30), (28, 32)):
        with pytest.raises(ValueError, match=f"{family} takes square images whose side is "
                                             f"a multiple of {cls.size_multiple}"):
            cls.check_image_shape(shape)
    rng = np.random.default_rng(0)
    odd = ImageSet(rng.integers(0, 256, (8, 30, 30), dtype=np.uint8), np.arange(8) % 2,
                   ("a", "b"))
    with pytest.raises(ValueError, match="not 30×30"):
        get_generator(family).fit(odd, smoke_budget(family, steps=1), progress=False)


def test_misspelt_budget_option_is_refused(grey28: ImageSet) -> None:
    with pytest.raises(ValueError, match=r"options\.widht: unknown budget option of dcgan; "
                                         r"accepted: beta1, mixed_precision, "):
        get_generator("dcgan").fit(grey28, smoke_budget("dcgan", options={"widht": 8}),
                                   progress=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_shapes_counts_and_determinism(family: str, fitted: dict[str, Generator],
                                              grey28: ImageSet) -> None:
    gen = fitted[family]
    out = gen.sample([3, 5], seed=7, batch_size=4)
    assert out.images.shape == (8, 28, 28) and out.images.dtype == np.uint8
    assert out.labels.dtype == np.int64 and out.class_counts().tolist() == [3, 5]
    assert out.class_names == grey28.class_names and out.source == f"generator:{family}"
    assert out.images.std() > 0  # not a constant image
    again = gen.sample([3, 5], seed=7, batch_size=4)
    np.testing.assert_array_equal(out.images, again.images)
    other = gen.sample([3, 5], seed=8, batch_size=4)
    assert not np.array_equal(out.images, other.images)
    assert gen.sample(seed=0).class_counts().tolist() == grey28.class_counts().tolist()
    workdir = gen.workdir  # type: ignore[attr-defined]
    assert (workdir / "checkpoint.pt").exists() and (workdir / "curves.json").exists()
    assert all(len(v) > 0 for v in gen.curves.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_gives_identical_samples(family: str, fitted: dict[str, Generator],
                                           tmp_path: Path) -> None:
    gen = fitted[family]
    gen.save(tmp_path / "model.pt")
    loaded = load_generator(tmp_path / "model.pt")
    assert type(loaded) is type(gen) and loaded.params == gen.params
    assert loaded.train_counts == gen.train_counts == [24, 24]
    np.testing.assert_array_equal(gen.sample(3, seed=1, batch_size=6).images,
                                  loaded.sample(3, seed=1, batch_size=6).images)


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize("family", FAMILIES)
def test_resume_after_crash_equals_uninterrupted(family: str, grey28: ImageSet,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    budget = smoke_budget(family, steps=8, checkpoint_every=3, batch_size=8)
    total = sum(budget.stage_steps(s) for s in get_generator(family).stages())
    reference = get_generator(family).fit(grey28, budget, seed=3, workdir=tmp_path / "a",
                                          progress=False)

    cls = GENERATORS[family]
    original = cls._train_step
    calls = {"n": 0}

    def crashing(self: Generator, *args: object) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] == total - 2:  # after at least one checkpoint, before the end
            raise _Crash
        return original(self, *args)

    monkeypatch.setattr(cls, "_train_step", crashing)
    with pytest.raises(_Crash):
        get_generator(family).fit(grey28, budget, seed=3, workdir=tmp_path / "b",
                                  progress=False)
    monkeypatch.setattr(cls, "_train_step", original)
    resumed = get_generator(family).fit(grey28, budget, seed=3, workdir=tmp_path / "b",
                                        progress=False)
    np.testing.assert_array_equal(reference.sample(2, seed=0).images,
                                  resumed.sample(2, seed=0).images)
    for key, value in reference._state().items():
        if isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values()):
            for name, tensor in value.items():
                assert torch.equal(tensor, resumed._state()[key][name]), (key, name)
    assert reference.curves == resumed.curves


def test_resume_refuses_another_budget(grey28: ImageSet, tmp_path: Path) -> None:
    get_generator("dcgan").fit(grey28, smoke_budget("dcgan", steps=4, checkpoint_every=2),
                               workdir=tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(RuntimeError, match="another budget"):
        get_generator("dcgan").fit(grey28, smoke_budget("dcgan", steps=6, checkpoint_every=2),
                                   workdir=tmp_path, progress=False)


@pytest.mark.parametrize("family", FAMILIES)
def test_rgb_and_other_sizes(family: str) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
    train = ImageSet(images, np.arange(16) % 2, ("a", "b"))
    gen = get_generator(family).fit(train, smoke_budget(family, steps=2, batch_size=4),
                                    progress=False)
    out = gen.sample(2, seed=0)
    assert out.images.shape == (4, 16, 16, 3) and out.images.dtype == np.uint8


def test_unknown_sample_option_is_refused(fitted: dict[str, Generator]) -> None:
    for gen in fitted.values():
        with pytest.raises(TypeError, match="not_a_knob: unknown sample knob"):
            gen.sample(1, not_a_knob=1)


def test_stylegan2_truncation(fitted: dict[str, Generator]) -> None:
    gen = fitted["stylegan2"]
    collapsed = gen.sample(4, seed=0, truncation=0.0)
    for label in (0, 1):
        members = collapsed.of_class(label)
        assert (members == members[0]).all(), "psi = 0 must give one image per class"
    assert not np.array_equal(collapsed.of_class(0)[0], collapsed.of_class(1)[0])
    full = gen.sample(4, seed=0, truncation=1.0)
    assert full.of_class(0).std(axis=0).mean() > 0
    # Random noise maps vary even at psi = 0; const (the default) does not.
    noisy = gen.sample(4, seed=0, truncation=0.0, noise_mode="random")
    assert not (noisy.of_class(0) == noisy.of_class(0)[0]).all()
    sweep = truncation_sweep(gen, 2, psis=(0.0, 1.0))  # type: ignore[arg-type]
    np.testing.assert_array_equal(sweep[1.0].images, gen.sample(2, seed=0).images)
    with pytest.raises(ValueError, match="psi"):
        gen.sample(1, truncation=1.5)
    # Spread around the class mean shrinks monotonically with psi (same z's).
    spreads = [gen.sample(6, seed=2, truncation=psi).of_class(1).astype(float).std(axis=0)
               .mean() for psi in (0.0, 0.5, 1.0)]
    assert spreads[0] == 0.0 < spreads[1] < spreads[2]


@pytest.mark.parametrize("family", ["ldm", "ddpm"])
def test_guidance_scale(family: str, fitted: dict[str, Generator],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    gen = fitted[family]
    # s = 0 is the unconditional model: the label no longer matters for the same noise.
    a = gen.sample([2, 0], seed=5, guidance_scale=0.0).images
    b = gen.sample([0, 2], seed=5, guidance_scale=0.0).images
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="guidance"):
        gen.sample(1, guidance_scale=-1.0)
    # Compare in the diffusion space: a VQ decoder may snap small differences away.
    monkeypatch.setattr(gen, "_from_space", lambda x: x)
    labels = torch.tensor([1, 1])

    def draw(scale: float) -> torch.Tensor:
        return gen._generate(labels, torch.Generator().manual_seed(5),
                             gen.knobs_for(gen.budget, guidance_scale=scale))

    s0, s1, s3 = draw(0.0), draw(1.0), draw(3.0)
    assert not torch.equal(s0, s1) and not torch.equal(s1, s3)
    # Guidance extrapolates from the unconditional towards the conditional prediction.
    assert (s3 - s0).abs().mean() > (s1 - s0).abs().mean()


def test_vqvae2_codes_and_temperature(fitted: dict[str, Generator], grey28: ImageSet) -> None:
    gen = fitted["vqvae2"]
    assert isinstance(gen, VQVAE2)
    top, bottom = gen.encode_codes(grey28)
    assert top.shape == (48, 4, 4) and bottom.shape == (48, 8, 8)
    assert top.dtype == np.int64 and 0 <= top.min() and top.max() < 32
    top2, bottom2 = gen.encode_codes(grey28.images[:5], batch_size=2)
    np.testing.assert_array_equal(top2, top[:5])
    np.testing.assert_array_equal(bottom2, bottom[:5])
    with pytest.raises(ValueError, match="shape"):
        gen.encode_codes(grey28.images[:, :20, :20])
    # Near-zero temperature makes the priors greedy: the same image for every z.
    greedy = gen.sample([3, 0], seed=0, temperature=1e-4).images
    assert (greedy == greedy[0]).all()


@pytest.mark.parametrize("prior", ["transformer", "pixelcnn"])
def test_vqvae2_prior_variants(prior: str, grey28: ImageSet) -> None:
    """One class-conditional prior pair instead of one per class, and the PixelCNN prior."""
    gen = VQVAE2(prior=prior, prior_per_class=prior == "pixelcnn")
    gen.fit(grey28, smoke_budget("vqvae2", steps=4), progress=False)
    assert len(gen.top_prior) == (2 if prior == "pixelcnn" else 1)
    out = gen.sample([2, 3], seed=0)
    assert out.images.shape == (5, 28, 28) and out.class_counts().tolist() == [2, 3]
    np.testing.assert_array_equal(out.images, gen.sample([2, 3], seed=0).images)


@pytest.mark.parametrize("balanced", [True, False])
def test_vqvae2_per_class_priors_train_on_balanced_batches(
        balanced: bool, grey28: ImageSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """With per-class priors, prior minibatches draw both classes equally often even when
    one class is 5× rarer; the autoencoder stage keeps the data's own class balance."""
    idx = np.concatenate([np.flatnonzero(grey28.labels == 0)[:4],
                          np.flatnonzero(grey28.labels == 1)[:20]])
    skewed = grey28.subset(idx)  # 4 : 20
    seen: dict[str, list[int]] = {}
    original = VQVAE2._train_step

    def recording(self: VQVAE2, stage: str, images: torch.Tensor, labels: torch.Tensor,
                  step: int) -> dict[str, float]:
        seen.setdefault(stage, []).extend(labels.tolist())
        return original(self, stage, images, labels, step)

    monkeypatch.setattr(VQVAE2, "_train_step", recording)
    VQVAE2(balanced_priors=balanced).fit(
        skewed, smoke_budget("vqvae2", steps=40, batch_size=16,
                             stage_fractions={"vqvae": 0.25, "top_prior": 1.0,
                                              "bottom_prior": 0.25}), progress=False)
    minority = {stage: float(np.mean(np.array(labels) == 0)) for stage, labels in seen.items()}
    assert minority["vqvae"] < 0.3  # 1/6 expected
    if balanced:
        assert 0.4 < minority["top_prior"] < 0.6 and 0.35 < minority["bottom_prior"] < 0.65
    else:
        assert minority["top_prior"] < 0.3


def test_vqvae2_priors_train_on_codes_encoded_once_per_stage(
        grey28: ImageSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The autoencoder is frozen while the priors train: the harness asks for the split's
    code maps once per prior stage (``_stage_inputs``) and every prior step gets rows of
    them, the codes ``encode_codes`` gives for the same images."""
    from synthlens.data.tensors import to_model_range
    from synthlens.generators.vqvae2 import VQVAE2Net

    encode_calls = 0
    real_encode = VQVAE2Net.encode

    def counting(self: VQVAE2Net, x: torch.Tensor):  # type: ignore[no-untyped-def]
        nonlocal encode_calls
        encode_calls += 1
        return real_encode(self, x)

    prior_rows: list[torch.Tensor] = []
    real_step = VQVAE2._train_step

    def recording(self: VQVAE2, stage: str, inputs: torch.Tensor, labels: torch.Tensor,
                  step: int) -> dict[str, float]:
        if stage != "vqvae":
            prior_rows.append(inputs)
        return real_step(self, stage, inputs, labels, step)

    monkeypatch.setattr(VQVAE2Net, "encode", counting)
    monkeypatch.setattr(VQVAE2, "_train_step", recording)
    budget = smoke_budget("vqvae2", steps=6)
    gen = VQVAE2().fit(grey28, budget, progress=False)
    n_vqvae = budget.stage_steps("vqvae")
    assert encode_calls == n_vqvae + 2  # one per autoencoder step, one per prior stage
    top, bottom = gen.encode_codes(grey28)
    codes = torch.from_numpy(np.concatenate([top.reshape(48, -1), bottom.reshape(48, -1)], 1))
    assert len(prior_rows) == budget.stage_steps("top_prior") + budget.stage_steps(
        "bottom_prior")
    for rows in prior_rows:  # every row is the code map of one training image
        assert rows.shape[1] == codes.shape[1]
        assert all((codes == row.long()).all(1).any() for row in rows)
    np.testing.assert_array_equal(
        gen._stage_inputs("top_prior", to_model_range(grey28.images)).numpy(), codes.numpy())


@pytest.mark.parametrize("first_stage", ["vq", "kl"])
def test_ldm_diffusion_trains_on_latents_encoded_once(
        first_stage: str, grey28: ImageSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first stage is frozen while the UNet trains: the split is encoded once per
    diffusion stage and every step gets rows of that encoding; a KL first stage is still
    sampled in every step (a fresh posterior draw), a VQ one is deterministic."""
    from synthlens.data.tensors import pad_to, to_model_range
    from synthlens.generators import LatentDiffusion

    budget = smoke_budget("ldm", steps=4)
    gen = LatentDiffusion(first_stage=first_stage)
    encoder_batches: list[int] = []
    rows_seen: list[torch.Tensor] = []
    real_step = LatentDiffusion._train_step

    def recording(self: LatentDiffusion, stage: str, inputs: torch.Tensor,
                  labels: torch.Tensor, step: int) -> dict[str, float]:
        if stage == "diffusion":
            rows_seen.append(inputs)
        return real_step(self, stage, inputs, labels, step)

    monkeypatch.setattr(LatentDiffusion, "_train_step", recording)
    real_begin = LatentDiffusion._begin_stage

    def begin(self: LatentDiffusion, stage: str, train: ImageSet) -> None:
        real_begin(self, stage, train)
        if stage == "diffusion":  # count encoder passes from here on
            self.autoencoder.encoder.register_forward_hook(
                lambda module, args, out: encoder_batches.append(len(args[0])))

    monkeypatch.setattr(LatentDiffusion, "_begin_stage", begin)
    gen.fit(grey28, budget, progress=False)
    assert encoder_batches == [48]  # the whole split, once; not once per step
    assert len(rows_seen) == budget.stage_steps("diffusion")
    gen.autoencoder.eval()
    with torch.no_grad():
        params = gen.autoencoder.encode_params(pad_to(to_model_range(grey28.images),
                                                      gen.work_size))
    for rows in rows_seen:
        assert all((params == row).flatten(1).all(1).any() for row in rows)
    # latents: VQ deterministic; KL mean + N(0, 1) * exp(logvar / 2) from the global RNG
    torch.manual_seed(0)
    drawn = gen.autoencoder.latent(params)
    if first_stage == "vq":
        torch.testing.assert_close(drawn, params)
    else:
        mean, logvar = params.chunk(2, dim=1)
        torch.manual_seed(0)
        torch.testing.assert_close(drawn, mean + torch.randn_like(mean) * (0.5 * logvar).exp())
        torch.testing.assert_close(gen.autoencoder.latent(params, sample=False), mean)
    out = gen.sample([2, 3], seed=0)
    assert out.images.shape == (5, 28, 28) and out.class_counts().tolist() == [2, 3]
