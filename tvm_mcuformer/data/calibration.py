"""Calibration samples for post-training quantization, from a dataset or an .npz file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .datasets import load_split


def load_calibration(source: str, input_shape: tuple[int, ...], count: int = 256) -> np.ndarray:
    """Return ``count`` model inputs of ``input_shape`` stacked on a new axis 0.

    ``source`` is a dataset name (``digits``, ``mnist5k``, ``imagefolder:PATH``:
    the first ``count`` images of its *train* split) or an ``.npz`` file holding
    one array of inputs (``N × input_shape`` or ``N × input_shape[1:]``).
    """
    if count < 1:
        raise ValueError(f"calibration count must be positive, got {count}")
    if source.endswith(".npz"):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"calibration file {source!r} does not exist")
        with np.load(path) as data:
            if len(data.files) != 1:
                raise ValueError(f"{source}: expected one array of inputs, found {data.files}")
            x = data[data.files[0]]
    else:
        x, _ = load_split(source, "train")
    x = np.asarray(x, dtype=np.float32)[:count]
    per_sample = int(np.prod(input_shape))
    if x[0].size != per_sample:
        raise ValueError(
            f"calibration data {source!r} has samples of shape {list(x.shape[1:])} but the model "
            f"takes {list(input_shape)}: calibrate with the data the model was trained on"
        )
    return x.reshape((len(x), *input_shape))
