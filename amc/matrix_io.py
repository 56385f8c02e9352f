"""Reading matrices and vectors from .npy, Matrix Market (.mtx), .csv and .txt files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from amc.errors import InputError


def load_array(path: str | Path, what: str = "array") -> np.ndarray:
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; give a file (.npy, .mtx, .csv or .txt)")
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix == ".mtx":
            import scipy.io
            data = scipy.io.mmread(str(path))
            data = data.toarray() if hasattr(data, "toarray") else np.asarray(data)
        elif suffix in (".csv", ".txt", ".dat"):
            data = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=1)
        else:
            raise InputError(f"{what} file {path}: unsupported format {suffix!r} (use .npy, .mtx, .csv or .txt)")
    except InputError:
        raise
    except Exception as exc:  # numpy/scipy raise many types for malformed files
        raise InputError(f"{what} file {path} could not be read: {exc}") from None
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise InputError(f"{what} file {path}: expected real numbers, got dtype {data.dtype}")
    if suffix == ".mtx" and data.ndim == 2 and data.shape[1] == 1 and what == "rhs":
        data = data[:, 0]
    return data.astype(np.float64)
