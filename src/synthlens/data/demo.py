"""The built-in demo dataset: procedural chest X-ray phantoms, normal vs pneumonia.

Every image is rendered from a few dozen random numbers: body outline, two lung fields with a
diaphragm dome, posterior ribs, clavicles, spine and mediastinum, heart shadow, then a random
pose (shift, scale, rotation), exposure (gain, gamma, offset), a smooth low-frequency field
and pixel noise. Class ``pneumonia`` (label 1) adds a faint, blurred, patchy opacity in one
lung field, of random place, size and strength (some nearly invisible); class ``normal``
(label 0) does not. Both classes also vary in lung density per side, so that "one lung is a
bit brighter" is not a give-away. Measured at 28 px, seeds 0/1/2: a two-conv-layer CNN
(16/32 channels, BN, 64-unit head, Adam 1e-3, 20-25 epochs) trained on the train split
reaches test AUROC 0.925/0.905/0.91; logistic regression on raw pixels (C=0.1) 0.85/0.80/0.83
(``tests/test_data_demo.py`` checks the latter stays well below 1). That leaves room for
synthetic data to help or harm.

Split sizes (same at every image size) keep the whole ``synthlens demo`` job within minutes
on two CPU cores: train 2000, val 300, test 600, normal:pneumonia = 2:3 in each split
(PneumoniaMNIST is about 1:3; milder imbalance keeps AUROC estimates on 600 test images
stable). Generation is vectorised NumPy (well under 2 s at 28 px) and depends only on
``(size, seed)``; the same seed gives the same anatomy at 28 and 64 px, rendered at each
resolution. Results are cached in memory per process.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from synthlens.data.dataset import SPLITS, ImageSet, RealData
from synthlens.errors import InputError

DEMO_VERSION = 1  # bump when the generator changes, so that caches and manifests can tell
CLASS_NAMES = ("normal", "pneumonia")
SPLIT_SIZES = {"train": 2000, "val": 300, "test": 600}
PNEUMONIA_SHARE = 0.6
_CHUNK_PIXELS = 1 << 16  # images per chunk * pixels: temporaries stay in cache


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _draw_params(rng: np.random.Generator, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image anatomy, pose, exposure and (for label 1) opacity parameters."""
    n = labels.shape[0]

    def u(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    p = {
        # pose
        "tx": rng.normal(0.0, 0.04, n), "ty": rng.normal(0.0, 0.04, n),
        "scale": u(0.9, 1.08), "aspect": u(0.93, 1.07), "rot": rng.normal(0.0, 0.05, n),
        # anatomy
        "body_w": u(0.98, 1.12), "lung_w": u(0.3, 0.36), "lung_h": u(0.72, 0.82),
        "lung_x": u(0.42, 0.48), "lung_y": u(-0.1, 0.0), "dome": u(0.1, 0.22),
        "heart_w": u(0.26, 0.32), "heart_h": u(0.2, 0.26), "heart_x": u(0.12, 0.2),
        "heart_a": u(0.08, 0.14), "rib_f": u(3.0, 3.6), "rib_a": u(0.03, 0.06),
        "rib_phase": u(0.0, 1.0), "spine_a": u(0.1, 0.16),
        # per-side lung density (both classes): a nuisance that looks like a faint opacity
        "dens_l": rng.normal(0.0, 0.025, n), "dens_r": rng.normal(0.0, 0.025, n),
        # exposure
        "gain": u(0.85, 1.1), "gamma": u(0.8, 1.25), "offset": rng.normal(0.0, 0.03, n),
        "noise": u(0.008, 0.025), "field_a": u(0.0, 0.04),
        "field_fx": rng.normal(0.0, 1.2 * np.pi, (n, 3)),
        "field_fy": rng.normal(0.0, 1.2 * np.pi, (n, 3)),
        "field_ph": rng.uniform(0.0, 2 * np.pi, (n, 3)),
        # opacity, used where label == 1
        "op_side": rng.integers(0, 2, n), "op_r": np.sqrt(u(0.0, 1.0)) * 0.65,
        "op_t": u(0.0, 2 * np.pi), "op_sigma": u(0.12, 0.3),
        "op_amp": rng.beta(2.0, 2.0, n) * 0.45,
        "tex_fx": rng.normal(0.0, 5.0, (n, 3)), "tex_fy": rng.normal(0.0, 5.0, (n, 3)),
        "tex_ph": rng.uniform(0.0, 2 * np.pi, (n, 3)),
        "mark_fx": rng.normal(0.0, 14.0, (n, 5)), "mark_fy": rng.normal(0.0, 14.0, (n, 5)),
        "mark_ph": rng.uniform(0.0, 2 * np.pi, (n, 5)),
    }
    p["op_amp"] = np.where(labels == 1, p["op_amp"], 0.0)
    return p


def _waves(p: dict[str, np.ndarray], key: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A sum of plane waves with per-image frequencies ``{key}_fx/fy`` and phases ``_ph``."""
    fx, fy, ph = (p[f"{key}_{part}"].astype(np.float32) for part in ("fx", "fy", "ph"))
    return sum(np.cos(fx[:, k, None, None] * x + fy[:, k, None, None] * y
                      + ph[:, k, None, None]) for k in range(fx.shape[1]))


def _render(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Images in [0, 1] before noise, shape (n, size, size), float32."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    col = lambda key: p[key].astype(np.float32)[:, None, None]  # noqa: E731
    u, v = axis[None, None, :], axis[None, :, None]
    cos, sin = np.cos(col("rot")), np.sin(col("rot"))
    du, dv = u - col("tx"), v - col("ty")
    x = (du * cos + dv * sin) / (col("scale") * col("aspect"))
    y = (-du * sin + dv * cos) / col("scale")
    w = 2.5 / size  # edge softness: about one pixel

    # body: a superellipse extending above the image (shoulders), soft tissue everywhere in it
    body_r = (np.abs(x) / col("body_w")) ** 2.5 + (np.abs(y - 0.35) / 1.3) ** 2.5
    body = _sigmoid((1.0 - body_r) / (4 * w))
    att = 0.55 * body

    # lungs: ellipses cut below by a diaphragm dome, tapering towards the apex
    lungs = []
    for side in (-1.0, 1.0):
        cx = side * col("lung_x")
        lx = (x - cx) / col("lung_w")
        ly = (y - col("lung_y")) / col("lung_h")
        taper = 1.0 + 0.3 * np.clip(-ly, 0, None) - 0.12 * np.clip(ly, 0, None)  # wide base
        r = np.abs(lx * taper) ** 2.4 + np.abs(ly) ** 2.4
        dome = col("lung_y") + col("lung_h") * (0.75 - col("dome") * (1.0 - lx**2))
        lungs.append(_sigmoid((1.0 - r) / (3 * w)) * _sigmoid((dome - y) / (3 * w)))
    lung_l, lung_r = lungs
    lung = lung_l + lung_r
    att = att - 0.38 * lung + col("dens_l") * lung_l + col("dens_r") * lung_r
    # lung markings: fine random texture, denser towards the hila
    marks = _waves(p, "mark", x, y)
    att = att + 0.012 * marks * lung * (1.2 - np.abs(np.abs(x) - 0.2))

    # ribs: curved bright bands over the lung fields, clavicles above them
    phase = col("rib_f") * (y - 0.9 * np.abs(x) + 0.9 * x**2) + col("rib_phase")
    ribs = (0.5 + 0.5 * np.cos(2 * np.pi * phase)) ** 4
    att = att + col("rib_a") * ribs * (0.3 + lung) * body
    clav_y = -0.62 + 0.18 * np.abs(x)
    clav = np.exp(-(((y - clav_y) / 0.035) ** 2)) * _sigmoid((0.75 - np.abs(x)) / (4 * w))
    att = att + 0.08 * clav * body

    # spine and mediastinum: a bright vertical band, vertebrae as a faint ripple
    spine = _sigmoid((0.1 - np.abs(x)) / (3 * w)) * body
    att = att + col("spine_a") * spine * (1.0 + 0.15 * np.cos(2 * np.pi * 7.0 * y))
    mediast = _sigmoid((0.2 - np.abs(x + 0.03 * y)) / (5 * w))
    att = att + 0.1 * mediast * body

    # heart: a bright ellipse low and to the image right, over the medial left lung
    hx = (x - col("heart_x")) / col("heart_w")
    hy = (y - 0.4) / col("heart_h")
    heart = _sigmoid((1.0 - hx**2 - hy**2) / (6 * w))
    att = att + col("heart_a") * heart

    # pneumonia: blurred, patchy opacity in one lung field, confined to that lung
    side = np.where(p["op_side"] == 0, -1.0, 1.0).astype(np.float32)[:, None, None]
    ox = side * col("lung_x") + col("op_r") * np.cos(col("op_t")) * col("lung_w")
    oy = col("lung_y") + col("op_r") * np.sin(col("op_t")) * col("lung_h")
    blob = np.exp(-((x - ox) ** 2 + (y - oy) ** 2) / (2 * col("op_sigma") ** 2))
    texture = _waves(p, "tex", x, y)
    own_lung = np.where(side > 0, lung_r, lung_l)
    att = att + col("op_amp") * blob * (0.75 + 0.25 * texture / 3.0) * own_lung

    # smooth exposure field (both classes)
    field = _waves(p, "field", x, y)
    att = att + col("field_a") * field / 3.0 * body

    image = 0.04 + np.clip(att, 0.0, None)
    image = np.clip(image / 0.8, 0.0, 1.0) ** col("gamma")
    return col("gain") * image + col("offset")


def _make_split(seed: int, split_index: int, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    # anatomy depends on (seed, split) only, so 28 px and 64 px show the same patients
    param_rng = np.random.default_rng([seed, split_index, 0])
    n_pos = round(n * PNEUMONIA_SHARE)
    labels = np.zeros(n, dtype=np.int64)
    labels[:n_pos] = 1
    labels = param_rng.permutation(labels)
    params = _draw_params(param_rng, labels)
    noise_rng = np.random.default_rng([seed, split_index, 1, size])
    images = np.empty((n, size, size), dtype=np.uint8)
    chunk_size = max(8, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        chunk = {k: v[start:stop] for k, v in params.items()}
        image = _render(chunk, size)
        noise = noise_rng.standard_normal(image.shape, dtype=np.float32)
        image = image + noise * chunk["noise"].astype(np.float32)[:, None, None]
        images[start:stop] = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return images, labels


@lru_cache(maxsize=4)
def _demo_arrays(size: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    out = []
    for index, split in enumerate(SPLITS):
        images, labels = _make_split(seed, index, SPLIT_SIZES[split], size)
        images.flags.writeable = False
        labels.flags.writeable = False
        out.append((images, labels))
    return tuple(out)


def make_demo(size: int = 28, seed: int = 0) -> RealData:
    """The built-in demo dataset (see the module docstring).

    Parameters
    ----------
    size:
        Image side in pixels, 16 to 256 (28 and 64 are the documented sizes).
    seed:
        Another seed gives other patients; the same seed always gives the same images.
    """
    if not isinstance(size, int | np.integer) or not 16 <= int(size) <= 256:
        raise InputError("demo size", f"must be a whole number of pixels from 16 to 256, "
                                      f"got {size!r}")
    size, seed = int(size), int(seed)
    name = "demo" if size == 28 else f"demo{size}"
    source = f"<demo v{DEMO_VERSION} size={size} seed={seed}>"
    sets = [ImageSet(images.copy(), labels.copy(), CLASS_NAMES, split=split, source=source)
            for split, (images, labels) in zip(SPLITS, _demo_arrays(size, seed), strict=True)]
    return RealData(name, *sets, source=source)
