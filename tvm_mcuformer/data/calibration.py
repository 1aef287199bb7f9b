"""Calibration samples for post-training quantization, from a dataset or an .npz file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .datasets import load_split


def load_calibration(source: str, input_shape: tuple[int, ...], count: int = 256) -> np.ndarray:
    """Return ``count`` model inputs of ``input_shape`` stacked on a new axis 0.

    ``source`` is a dataset name (``digits``, ``mnist5k``, ``imagefolder:PATH``:
    the first ``count`` images of its *train* split) or an ``.npz`` file holding
    one array of inputs (``N × input_shape`` or ``N × input_shape[1:]``).
    Raises ``ValueError`` naming the source for an unreadable file, no samples, a
    wrong sample shape, NaN/Inf values or all-zero data.
    """
    if count < 1:
        raise ValueError(f"calibration count must be positive, got {count}")
    if source.endswith(".npz"):
        x = _read_npz(Path(source))
    else:
        x, _ = load_split(source, "train")
    x = np.asarray(x)
    x = x[:count] if x.ndim else x
    if x.ndim == 0 or len(x) == 0 or x[0].size == 0:
        raise ValueError(
            f"calibration data {source!r} holds no samples (shape {list(x.shape)}): give "
            "an array of model inputs, one per row"
        )
    if x.dtype.kind not in "biuf":
        raise ValueError(f"calibration data {source!r} has dtype {x.dtype}: give numbers")
    x = x.astype(np.float32)
    per_sample = int(np.prod(input_shape))
    if x[0].size != per_sample:
        raise ValueError(
            f"calibration data {source!r} has samples of shape {list(x.shape[1:])} but the model "
            f"takes {list(input_shape)}: calibrate with the data the model was trained on"
        )
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"calibration data {source!r}: sample {int(np.argmin(finite))} holds NaN or Inf "
            "(clean the data)"
        )
    if not np.any(x):
        raise ValueError(
            f"calibration data {source!r} is all zeros: activation ranges cannot be "
            "measured; calibrate with real inputs"
        )
    return x.reshape((len(x), *input_shape))


def _read_npz(path: Path) -> np.ndarray:
    """The one array of an ``.npz`` file, or ``ValueError`` naming the file."""
    if path.is_dir():
        raise ValueError(f"calibration file {str(path)!r} is a directory: give an .npz file")
    if not path.is_file():
        raise ValueError(f"calibration file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            if len(data.files) != 1:
                raise ValueError(f"{path}: expected one array of inputs, found {data.files}")
            return data[data.files[0]]
    except (OSError, EOFError, AttributeError, TypeError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"calibration file {str(path)!r} is not a readable .npz ({type(err).__name__}): "
            "save one with numpy.savez(path, x)"
        ) from None
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(
            f"calibration file {str(path)!r} is not a readable .npz (not a numpy archive): "
            "save one with numpy.savez(path, x)"
        ) from None
