"""The real data a run compares every synthetic set against, with its neighbourhoods cached.

:class:`RealReference` is fitted once per run (and per feature space) on the real training
features the generators learnt from, optionally with labels and a held-out real set that no
generator saw. It computes once what every synthetic set reuses: real-vs-real k-NN radii
(overall and within each class), held-out-to-train distances, and the real feature moments
for FID and KID. :meth:`RealReference.compare` then runs the two sweeps a synthetic set needs
(synthetic vs synthetic, synthetic vs real) and returns a :class:`SetNeighbourhoods` from
which every neighbour-based metric reads its numbers.

The k-NN engine (and torch) is imported when a reference is constructed, not with this
module, so the metric classes and the catalogue stay cheap to import.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from synthlens.data.dataset import validate_labels
from synthlens.errors import InputError
from synthlens.metrics.moments import Gaussian, InnerProducts, shares_products

if TYPE_CHECKING:
    from synthlens.metrics.knn import DistanceName, Neighbours

#: The neighbourhood rules of :class:`RealReference` (``metrics.neighbourhood``).
Neighbourhood = Literal["closed", "open"]
NEIGHBOURHOODS: tuple[str, ...] = ("closed", "open")


@dataclass
class SetNeighbourhoods:
    """Neighbour facts about one synthetic set relative to the real reference.

    Scores are the engine's internal units (see :mod:`synthlens.metrics.knn`); ``distances``
    of the :class:`Neighbours` convert them.
    """

    n: int
    """Number of synthetic samples."""
    synthetic_knn: Neighbours
    """Each synthetic sample's k nearest *other* synthetic samples (its variety radius)."""
    to_real: Neighbours
    """Each synthetic sample's k nearest real training samples."""
    in_real_balls: np.ndarray
    """How many real k-NN balls (``<=`` the real point's k-th neighbour score) contain it."""
    in_copy_balls: np.ndarray
    """1 when it is closer to some real point than that point's own nearest real neighbour
    (or identical to it): a *copy* (companion study's privacy sets); else 0."""
    real_to_synthetic: Neighbours
    """Each real training sample's nearest synthetic sample."""
    real_in_synthetic_balls: np.ndarray
    """1 when some synthetic k-NN ball contains the real training sample (recall); else 0."""
    holdout_to_synthetic: Neighbours | None
    """Each held-out real sample's nearest synthetic sample (``None`` without a holdout)."""
    realism: np.ndarray | None
    """Realism score (Kynkäänniemi et al. 2019) of each synthetic sample."""
    per_class: dict[Any, SetNeighbourhoods] = field(default_factory=dict)
    """Class-conditional neighbourhoods (synthetic class c vs real class c), by label."""
    stats: dict[str, int] = field(default_factory=dict)
    products: InnerProducts | None = None
    """The inner products the sweeps read (high-dimensional spaces, see
    :meth:`RealReference.set_products`), for the moment metrics to reuse."""

    @property
    def copy(self) -> np.ndarray:
        """Copy set: closer to some real image than that image's nearest real neighbour."""
        return self.in_copy_balls > 0

    @property
    def real(self) -> np.ndarray:
        """Real set: inside some real k-NN ball, and not a copy."""
        return (self.in_real_balls > 0) & ~self.copy

    @property
    def non_real(self) -> np.ndarray:
        return ~(self.in_real_balls > 0) & ~self.copy


class RealReference:
    """Real training features and their cached neighbourhoods; fit once, compare many sets.

    Parameters
    ----------
    k:
        Neighbourhood size of every k-NN metric (5 in the study and in Naeem et al. 2020).
    distance:
        ``"euclidean"``/``"cosine"`` for float features, ``"hamming"`` for integer code maps.
    device, precision, memory_mb, progress:
        Passed to :class:`~synthlens.metrics.knn.NeighbourEngine`.
    feature_space:
        Description of the features (extractor id, weights SHA-256, preprocessing); copied
        into every :class:`~synthlens.metrics.base.MetricResult`.
    neighbourhood:
        Who is inside a k-NN ball or a copy ball. ``"closed"`` [default]: ``d <= radius``,
        so identical sets score precision and coverage 1, and an exact duplicate of a real
        sample is always a copy. ``"open"``: ``d < radius`` for every ball, the convention
        of prdc and of the companion study's analyzer (``synthetic-image-analyzer``); with
        ties (integer code maps under Hamming distance) the two differ, on continuous
        features they agree. See ``docs/metrics.md``.

    Fitted attributes (after :meth:`fit`): ``features_``, ``labels_``, ``class_names_``,
    ``holdout_``, ``holdout_labels_``, ``neighbours_`` (real-vs-real k-NN, self excluded),
    ``radii_`` (k-th neighbour scores), ``nn1_`` (nearest-neighbour scores),
    ``holdout_neighbours_`` (holdout-to-train k-NN), ``class_indices_`` and
    ``class_neighbours_`` (within-class k-NN), ``products_`` (the real sets' inner products
    in a high-dimensional Euclidean space, else ``None``: see :meth:`set_products`).
    """

    def __init__(self, k: int = 5, distance: DistanceName = "euclidean", *,
                 device: str = "cpu", precision: Literal["float32", "float64"] = "float32",
                 memory_mb: float = 256.0, progress: bool = False,
                 feature_space: dict[str, Any] | None = None,
                 neighbourhood: Neighbourhood = "closed") -> None:
        if not isinstance(k, int | np.integer) or k < 1:
            raise InputError("k", f"must be a positive integer, got {k!r}")
        if neighbourhood not in NEIGHBOURHOODS:
            raise InputError("neighbourhood", f"unknown rule {neighbourhood!r}; accepted: "
                                              f"{', '.join(NEIGHBOURHOODS)}")
        from synthlens.metrics.knn import NeighbourEngine

        self.k = int(k)
        self.neighbourhood: Neighbourhood = neighbourhood
        self.distance: DistanceName = distance
        self.engine = NeighbourEngine(distance, device=device, precision=precision,
                                      memory_mb=memory_mb, progress=progress)
        self.feature_space = feature_space
        self._cache: dict[Any, Any] = {}

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, features: np.ndarray, labels: np.ndarray | None = None, *,
            holdout: np.ndarray | None = None, holdout_labels: np.ndarray | None = None,
            class_names: Sequence[str] | None = None) -> RealReference:
        """Validate the real sets and compute their neighbourhoods (the expensive part, once)."""
        x = self.engine.validate(features, "real features")
        if x.shape[0] <= self.k:
            raise InputError("real features", f"need more than k={self.k} samples, got "
                                              f"{x.shape[0]}")
        self.features_ = x
        self.labels_ = _check_labels(labels, x.shape[0], "real labels")
        self.class_names_ = _class_names(class_names, self.labels_)
        self.products_ = InnerProducts() if self._shares(x.shape[0]) else None
        own = None if self.products_ is None else self.products_(x)
        # Grouped once (identical rows hashed once), swept by every fit and compare.
        self._points = self.engine.points(x, "real features")
        self.neighbours_ = self.engine.knn(self._points, None, self.k, inner_products=own)
        self.radii_ = self.neighbours_.kth()
        self.nn1_ = self.neighbours_.scores[:, 0]
        self.class_indices_: dict[int, np.ndarray] = {}
        self.class_neighbours_: dict[int, Neighbours] = {}
        if self.labels_ is not None:
            for label in np.unique(self.labels_):
                idx = np.flatnonzero(self.labels_ == label)
                self.class_indices_[int(label)] = idx
                if idx.size > self.k:  # the class's rows read in place, not copied
                    self.class_neighbours_[int(label)] = self.engine.knn(
                        self._points, None, self.k, query_rows=idx, inner_products=own)
                else:
                    _warn(f"real class {self._class_name(label)} has {idx.size} samples, not "
                          f"more than k={self.k}: no class-conditional k-NN metrics for it")
        self._set_holdout(holdout, holdout_labels)
        self._cache = {}
        return self

    def _set_holdout(self, holdout: np.ndarray | None, holdout_labels: np.ndarray | None) -> None:
        self.holdout_ = None
        self.holdout_labels_ = None
        self.holdout_neighbours_ = None
        self._holdout_points = None
        if holdout is None:
            if holdout_labels is not None:
                raise InputError("holdout labels", "given without holdout features")
            return
        h = self.engine.validate(holdout, "holdout features")
        if h.shape[1:] != self.features_.shape[1:]:
            raise InputError("holdout features", f"have shape {h.shape[1:]} per sample, the real "
                                                  f"features {self.features_.shape[1:]}")
        self.holdout_ = h
        self.holdout_labels_ = _check_labels(holdout_labels, h.shape[0], "holdout labels")
        products = self.products_(h, self.features_) if self.products_ is not None and \
            self._shares(h.shape[0]) else None
        self._holdout_points = self.engine.points(h, "holdout features")
        self.holdout_neighbours_ = self.engine.knn(self._holdout_points, self._points, self.k,
                                                   inner_products=products)

    def with_holdout(self, holdout: np.ndarray | None,
                     holdout_labels: np.ndarray | None = None) -> RealReference:
        """A copy sharing every cached real-vs-real result, with another holdout set."""
        self._check_fitted()
        other = object.__new__(RealReference)
        other.__dict__.update(self.__dict__)
        other._cache = self._cache  # moments etc. depend only on the training features
        if self.products_ is not None:  # the real set's own products are shared
            other.products_ = InnerProducts(parent=self.products_)
        other._set_holdout(holdout, holdout_labels)
        return other

    def floor_split(self, seed: int = 0) -> tuple[RealReference, np.ndarray, np.ndarray | None]:
        """Real-vs-real floor: half the holdout stands in for a synthetic set.

        Returns ``(reference, stand_in, stand_in_labels)``: a reference whose holdout is the
        other half (the non-members of the privacy metrics), and the half to evaluate as if it
        were synthetic. Its scores are what genuine unseen real images get, the floor every
        synthetic set's scores should be read against (see ``docs/metrics.md``).
        """
        self._check_fitted()
        if self.holdout_ is None or self.holdout_.shape[0] < 2 * (self.k + 1):
            raise InputError("holdout", f"a real-vs-real floor needs a holdout of at least "
                                        f"{2 * (self.k + 1)} samples")
        rng = np.random.default_rng(seed)
        n = self.holdout_.shape[0]
        labels = self.holdout_labels_
        if labels is not None:
            # Stratified halves so per-class floors exist for every class.
            a_parts, b_parts = [], []
            for label in np.unique(labels):
                idx = rng.permutation(np.flatnonzero(labels == label))
                a_parts.append(idx[: len(idx) // 2])
                b_parts.append(idx[len(idx) // 2:])
            a, b = np.sort(np.concatenate(a_parts)), np.sort(np.concatenate(b_parts))
        else:
            perm = rng.permutation(n)
            a, b = np.sort(perm[: n // 2]), np.sort(perm[n // 2:])
        ref = self.with_holdout(self.holdout_[b], None if labels is None else labels[b])
        return ref, self.holdout_[a], None if labels is None else labels[a]

    # -- per synthetic set -----------------------------------------------------------------------

    def _shares(self, *sizes: int) -> bool:
        # On CPU only: on a GPU the engine's tiles are computed on the device, faster than
        # BLAS products on the host.
        return (self.distance == "euclidean" and self.engine.device.type == "cpu"
                and shares_products(self.features_.shape[1], self.features_.shape[0], *sizes))

    def set_products(self, synthetic: np.ndarray) -> InnerProducts | None:
        """Where one synthetic set's inner products are shared (a high-dimensional Euclidean
        space on the CPU, every set no larger than the dimension: see
        :func:`~synthlens.metrics.moments.shares_products`), a cache for them on top of the
        real sets' own; else ``None`` (every metric computes what it needs)."""
        self._check_fitted()
        sizes = [synthetic.shape[0]]
        if self.holdout_ is not None:
            sizes.append(self.holdout_.shape[0])
        if self.products_ is None or synthetic.ndim != 2 or not self._shares(*sizes):
            return None
        return InnerProducts(parent=self.products_)

    def compare(self, synthetic: np.ndarray, labels: np.ndarray | None = None, *,
                per_class: bool = True, realism: bool = True,
                products: InnerProducts | None = None) -> SetNeighbourhoods:
        """All neighbour facts of one synthetic set (two sweeps, plus one per class).

        ``products``: the set's inner-product cache (default: :meth:`set_products`), kept in
        the result for the moment metrics."""
        self._check_fitted()
        s = self.engine.validate(synthetic, "synthetic features")
        if s.shape[1:] != self.features_.shape[1:]:
            raise InputError("synthetic features", f"have shape {s.shape[1:]} per sample, the "
                                                   f"real features {self.features_.shape[1:]}")
        if s.shape[0] <= self.k:
            raise InputError("synthetic features", f"need more than k={self.k} samples for the "
                                                   f"k-NN metrics, got {s.shape[0]}")
        labels = _check_labels(labels, s.shape[0], "synthetic labels")
        if products is None:
            products = self.set_products(s)
        points = self.engine.points(s, "synthetic features")  # grouped once for every sweep
        out = self._compare(s, points, self.neighbours_, self.holdout_ is not None, realism,
                            products=products)
        out.products = products
        if per_class and labels is not None and self.labels_ is not None:
            for label, idx in self.class_indices_.items():
                nb = self.class_neighbours_.get(label)
                sel = np.flatnonzero(labels == label)
                if nb is None or sel.size <= self.k:
                    continue
                out.per_class[label] = self._compare(s, points, nb, False,
                                                     realism=False, rows=(sel, idx),
                                                     products=products)
        return out

    def _compare(self, s: np.ndarray, points: Any, real_nb: Neighbours, holdout: bool,
                 realism: bool, rows: tuple[np.ndarray, np.ndarray] | None = None,
                 products: InnerProducts | None = None) -> SetNeighbourhoods:
        """``s``: the synthetic features, ``points`` the engine's grouping of them;
        ``holdout``: whether to sweep the holdout too; ``rows``: (synthetic rows, real rows)
        of one class, swept in place; ``products``: the inner products the sweeps read
        (``None``: computed tile by tile)."""
        from synthlens.metrics.knn import Ball

        engine = self.engine
        s_rows, r_rows = (None, None) if rows is None else rows
        real = self.features_
        syn_sweep = engine.sweep(points, None, k=self.k, query_name="synthetic features",
                                 query_rows=s_rows,
                                 inner_products=None if products is None else products(s))
        syn_nb = syn_sweep.neighbours
        assert syn_nb is not None
        radii = real_nb.kth()
        realism_radii = None
        if realism:
            # Kynkäänniemi et al. (2019) leave out the half of the real balls that are largest.
            realism_radii = np.where(radii <= np.median(radii), radii, np.inf)
        open_ = self.neighbourhood == "open"
        cross = engine.sweep(
            points, self._points, k=self.k, reference_nearest=True,
            reference_balls=[Ball(radii, strict=open_, identical=False),
                             Ball(real_nb.scores[:, 0], strict=True, count=False,
                                  identical=not open_)],
            query_balls=[Ball(syn_nb.kth(), strict=open_, count=False, identical=False)],
            realism_radii=realism_radii,
            query_name="synthetic features", reference_name="real features",
            query_rows=s_rows, reference_rows=r_rows,
            inner_products=None if products is None else products(s, real))
        assert cross.neighbours is not None and cross.reference_nearest is not None
        hold_nb = None
        stats = {key: syn_sweep.stats.get(key, 0) + cross.stats.get(key, 0)
                 for key in cross.stats}
        if holdout:
            hold = engine.sweep(self._holdout_points, points, k=1,
                                query_name="holdout features",
                                reference_name="synthetic features",
                                inner_products=None if products is None
                                else products(self.holdout_, s))
            hold_nb = hold.neighbours
            stats = {key: stats[key] + hold.stats.get(key, 0) for key in stats}
        return SetNeighbourhoods(
            n=s.shape[0] if s_rows is None else len(s_rows), synthetic_knn=syn_nb,
            to_real=cross.neighbours,
            in_real_balls=cross.reference_ball_counts[0],
            in_copy_balls=cross.reference_ball_counts[1],
            real_to_synthetic=cross.reference_nearest,
            real_in_synthetic_balls=cross.query_ball_counts[0],
            holdout_to_synthetic=hold_nb, realism=cross.realism, stats=stats)

    def within(self, scores: np.ndarray, radii: np.ndarray) -> np.ndarray:
        """``scores`` inside balls of ``radii`` under the reference's neighbourhood rule (for
        the metrics that test ball membership themselves, e.g. coverage)."""
        return scores < radii if self.neighbourhood == "open" else scores <= radii

    # -- cached moments ----------------------------------------------------------------------------

    def moments(self, label: int | None = None) -> Gaussian:
        """Float64 moments of the real features (of one class), cached with the covariance
        square root FID reuses (see :mod:`synthlens.metrics.moments`: a d×d covariance, or
        the rows themselves in spaces with more dimensions than samples)."""
        key = ("moments", label)
        if key not in self._cache:
            rows = None if label is None else self.class_indices_[label]
            self._cache[key] = Gaussian.fit(self.features_, rows)
        return self._cache[key]

    def cached(self, key: Any, compute: Any) -> Any:
        """Memoise ``compute()`` under ``key`` for this fit (shared by :meth:`with_holdout`)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # -- helpers -----------------------------------------------------------------------------------

    def _class_name(self, label: Any) -> str:
        names = getattr(self, "class_names_", None)
        if names is not None and 0 <= int(label) < len(names):
            return str(names[int(label)])
        return str(int(label))

    def _check_fitted(self) -> None:
        if not hasattr(self, "features_"):
            raise RuntimeError("RealReference is not fitted: call fit() first")

    @property
    def n(self) -> int:
        self._check_fitted()
        return int(self.features_.shape[0])


def _check_labels(labels: np.ndarray | None, n: int, source: str) -> np.ndarray | None:
    return None if labels is None else validate_labels(labels, n, source)


def _class_names(class_names: Sequence[str] | None,
                 labels: np.ndarray | None) -> list[str] | None:
    if class_names is not None:
        names = [str(c) for c in class_names]
        if labels is not None and labels.size and labels.max() >= len(names):
            raise InputError("class names", f"{len(names)} names for labels up to "
                                            f"{labels.max()}")
        return names
    return None


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)
