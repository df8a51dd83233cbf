"""Real and synthetic image data: loaders, validation, the demo phantoms, procedural test
datasets (:func:`make_phantoms`) and the holdout.

Every loader returns validated ``uint8`` images and ``int64`` labels
(:class:`ImageSet`, :class:`RealData`) or raises :class:`synthlens.errors.InputError` naming
the file, the key and the problem.
"""

from synthlens.data.dataset import DATA_TASKS, SPLITS, ImageSet, RealData
from synthlens.data.demo import DEMO_VERSION, make_demo
from synthlens.data.folder import load_folder
from synthlens.data.load import load_dataset
from synthlens.data.medmnist import cache_root, load_medmnist, medmnist_path
from synthlens.data.medmnist_info import MEDMNIST, MedMNISTInfo
from synthlens.data.npz import (
    ArrayReader,
    load_arrays,
    load_imageset,
    load_npz,
    save_imageset,
    save_real_data,
)
from synthlens.data.phantoms import make_phantoms
from synthlens.data.splits import (
    HOLDOUT_FRACTION,
    holdout_indices,
    reserve_holdout,
    stratified_indices,
    stratified_subsample,
)
from synthlens.data.synthetic import ACCEPTED_ARRAYS, as_named_arrays, load_synthetic

__all__ = [
    "ACCEPTED_ARRAYS",
    "DATA_TASKS",
    "DEMO_VERSION",
    "HOLDOUT_FRACTION",
    "MEDMNIST",
    "SPLITS",
    "ArrayReader",
    "ImageSet",
    "MedMNISTInfo",
    "RealData",
    "as_named_arrays",
    "cache_root",
    "holdout_indices",
    "load_arrays",
    "load_dataset",
    "load_folder",
    "load_imageset",
    "load_medmnist",
    "load_npz",
    "load_synthetic",
    "make_demo",
    "make_phantoms",
    "medmnist_path",
    "reserve_holdout",
    "save_imageset",
    "save_real_data",
    "stratified_indices",
    "stratified_subsample",
]
