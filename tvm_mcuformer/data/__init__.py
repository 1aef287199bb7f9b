"""Offline datasets: ``load_split`` gives normalised NCHW float32 images and int64 labels."""

from tvm_mcuformer.data.datasets import (
    NORM_MEAN,
    NORM_STD,
    DatasetInfo,
    dataset_info,
    load_split,
    normalize,
    stratified_split,
)

__all__ = [
    "NORM_MEAN",
    "NORM_STD",
    "DatasetInfo",
    "dataset_info",
    "load_split",
    "normalize",
    "stratified_split",
]
