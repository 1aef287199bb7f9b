"""Architecture search: search spaces and the weight-entangled supernet.

Training lives in :mod:`tvm_mcuformer.search.train_supernet` (also the
``python -m`` / ``torchrun`` entry point, hence not imported here).
"""

from tvm_mcuformer.search.space import (
    DEFAULT_PATCH_SIZES,
    DEFAULT_RANK_RATIOS,
    SearchSpace,
    SubnetConfig,
    default_space,
    low_rank,
)
from tvm_mcuformer.search.supernet import SubnetViT, Supernet

__all__ = [
    "DEFAULT_PATCH_SIZES",
    "DEFAULT_RANK_RATIOS",
    "SearchSpace",
    "SubnetConfig",
    "SubnetViT",
    "Supernet",
    "default_space",
    "low_rank",
]
