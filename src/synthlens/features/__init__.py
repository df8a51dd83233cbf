"""Feature extractors: every space a metric can be computed in, loadable offline.

``get_extractor(name, **options)`` builds one by name::

    extractor = get_extractor("inception")          # FID's TF InceptionV3, pool3, 2048-d
    features = extractor.extract(images)            # uint8 (N,H,W[,3]) -> float32 (N, 2048)
    extractor.describe()                            # id, weights SHA-256, preprocessing

Names: ``pixels``, ``inception``, ``efficientnet_lite0``, ``domain`` (trained on the real
training split), ``vqvae_codes`` (trained; Hamming distance), ``torchscript`` and ``onnx``
(a model file by path), or ``"package.module:factory"`` (a Python entry point that returns
an :class:`Extractor`). :class:`FeatureCache` extracts each (data, extractor,
preprocessing) once.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from synthlens.errors import InputError
from synthlens.features.base import DISTANCES, Extractor, NotFittedError
from synthlens.features.cache import FeatureCache

#: name -> "module:Class", imported on first use so that ``import synthlens.features``
#: stays cheap and optional dependencies load only when asked for.
_REGISTRY: dict[str, str] = {
    "pixels": "synthlens.features.pixels:PixelExtractor",
    "inception": "synthlens.features.inception:InceptionExtractor",
    "efficientnet_lite0": "synthlens.features.efficientnet:EfficientNetLite0Extractor",
    "domain": "synthlens.features.domain:DomainExtractor",
    "vqvae_codes": "synthlens.features.vqvae:VQVAECodesExtractor",
    "torchscript": "synthlens.features.user:TorchScriptExtractor",
    "onnx": "synthlens.features.user:OnnxExtractor",
}


def available_extractors() -> list[str]:
    """Registered extractor names (entry points ``module:factory`` are accepted too)."""
    return sorted(_REGISTRY)


def extractor_class(name: str) -> type[Extractor]:
    if name not in _REGISTRY:
        raise InputError("features.extractors", f"unknown extractor {name!r}; choose from "
                                                f"{available_extractors()} or give "
                                                "'package.module:factory'")
    module, attr = _REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module), attr)
    assert issubclass(cls, Extractor)
    return cls


def get_extractor(name: str, **options: Any) -> Extractor:
    """Build an extractor by registered name or ``"package.module:factory"``.

    Unknown names and options raise :class:`InputError` naming what is accepted.
    """
    if name not in _REGISTRY and ":" in name:
        return _from_entry_point(name, options)
    cls = extractor_class(name)
    unknown = sorted(set(options) - set(cls.option_names()))
    if unknown:
        raise InputError(f"features.{name}", f"unknown option(s) {unknown}; accepted: "
                                             f"{sorted(cls.option_names())}")
    return cls(**options)


def _check_options(factory: Any, name: str, options: dict[str, Any]) -> None:
    """Options of an entry-point factory, by its signature (``**`` takes anything)."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise InputError(f"features.{name}", f"unknown option(s) {unknown}; accepted: "
                                             f"{sorted(parameters)}")


def _from_entry_point(target: str, options: dict[str, Any]) -> Extractor:
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise InputError("features.extractors", f"cannot import {target!r}: {error}") from error
    _check_options(factory, target, options)
    extractor = factory(**options)
    if not isinstance(extractor, Extractor):
        raise InputError("features.extractors", f"{target!r} returned "
                                                f"{type(extractor).__name__}, not a "
                                                "synthlens.features.Extractor")
    if extractor.distance not in DISTANCES:
        raise InputError("features.extractors", f"{target!r} has distance "
                                                f"{extractor.distance!r}; choose from "
                                                f"{DISTANCES}")
    return extractor


__all__ = ["DISTANCES", "Extractor", "FeatureCache", "NotFittedError", "available_extractors",
           "extractor_class", "get_extractor"]
