"""Letter-classification data: EMNIST letters (IDX gzip or CSV) and an embedded synthetic set.

Public surface
--------------
- ``Dataset``: images ``x`` (N, 28, 28) float32 in [0, 1], labels ``y`` (N,) int64 0-based, ``n_classes``,
  ``name`` and ``synthetic`` (True for the generated set; shown wherever the data set is named).
- ``load_emnist_idx(images, labels)`` / ``load_emnist_csv(path)``: the official EMNIST letters files (images
  stored transposed, labels 1..26 shifted to 0-based). Problems raise ``DataError`` naming the file.
- ``synthetic_letters(n, n_classes=26, seed=0)``: deterministic handwriting-style letters rendered from the
  fonts matplotlib ships, with random affine, elastic and stroke-width distortions. Labelled synthetic.
- ``stratified_split(y, n_train, n_test, seed)``: seeded, class-balanced index split.
- ``find_emnist_dir(path=None)``: explicit path, then ``$AMC_DATA_DIR``, then ``<repo>/../shared/data/
  emnist-letters-am``, then ``<repo>/data/emnist``; ``None`` when none exists (never required).
- ``load_data(cfg)``: (train, test) for a ``DataConfig`` (see ``training.config``).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from amc.errors import AmcError

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
SYNTHETIC_NAME = "synthetic-letters"
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "AMC_DATA_DIR"
MAX_LETTER_CLASSES = 26

PathLike = Union[str, os.PathLike]


class DataError(AmcError):
    """A data file is missing, corrupt or inconsistent. The message names the file and the problem."""


@dataclass
class Dataset:
    x: np.ndarray                 # (N, 28, 28) float32 in [0, 1]
    y: np.ndarray                 # (N,) int64, 0-based
    n_classes: int
    name: str
    synthetic: bool = False
    class_names: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"{self.name}: {len(self.x)} images but {len(self.y)} labels")
        if not self.class_names:
            self.class_names = [chr(ord("a") + k) if k < 26 else str(k) for k in range(self.n_classes)]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def label(self) -> str:
        """Name for logs; synthetic data always says so."""
        return f"{self.name} (synthetic)" if self.synthetic else self.name

    def subset(self, idx: np.ndarray, name: Optional[str] = None) -> "Dataset":
        return Dataset(self.x[idx], self.y[idx], self.n_classes, name or self.name, self.synthetic,
                       list(self.class_names))

    def __repr__(self) -> str:
        counts = np.bincount(self.y, minlength=self.n_classes)
        return (f"Dataset({self.label!r}: {len(self)} images {self.x.shape[1:]}, {self.n_classes} classes, "
                f"{counts.min()}-{counts.max()} per class)")


# ---------------------------------------------------------------------------------------------------------
# IDX (official EMNIST / MNIST format, gzip-compressed or raw)
# ---------------------------------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip stream ({exc})") from None
    if path.suffix == ".gz":
        raise DataError(f"{path}: has a .gz suffix but is not gzip data (first bytes {raw[:4]!r})")
    return raw


def read_idx(path: PathLike, expected_magic: int) -> np.ndarray:
    """Read one IDX file (uint8 payload) and return its array; checks magic number and payload size."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = struct.unpack(">I", data[:4])[0]
    if magic != expected_magic:
        kind = {IMAGE_MAGIC: "images", LABEL_MAGIC: "labels"}.get(expected_magic, "?")
        raise DataError(f"{path}: bad magic number {magic} (expected {expected_magic} for an IDX {kind} file)")
    ndim = data[3]
    if data[2] != 0x08:
        raise DataError(f"{path}: element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: header truncated")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    size = int(np.prod(dims))
    if len(data) - header != size:
        raise DataError(f"{path}: payload has {len(data) - header} bytes but the header declares "
                        f"{' x '.join(map(str, dims))} = {size}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def load_emnist_idx(images: PathLike, labels: PathLike, transpose: bool = True, label_offset: Optional[int] = None,
                    name: str = "emnist-letters", n_classes: Optional[int] = None) -> Dataset:
    """Load an EMNIST letters IDX pair. Images are transposed back to upright (EMNIST stores them transposed).

    ``label_offset``: subtracted from the labels; default: 1 when the smallest label is >= 1 (EMNIST letters
    use 1..26), else 0.
    """
    imgs = read_idx(images, IMAGE_MAGIC)
    labs = read_idx(labels, LABEL_MAGIC)
    if imgs.ndim != 3:
        raise DataError(f"{images}: expected 3 dimensions (N, rows, cols), got {imgs.shape}")
    if labs.ndim != 1:
        raise DataError(f"{labels}: expected 1 dimension (N,), got {labs.shape}")
    if len(imgs) != len(labs):
        raise DataError(f"count mismatch: {images} holds {len(imgs)} images but {labels} holds {len(labs)} labels")
    if transpose:
        imgs = imgs.transpose(0, 2, 1)
    return _finish(imgs, labs.astype(np.int64), label_offset, name, n_classes, str(labels))


def load_emnist_csv(path: PathLike, transpose: bool = True, label_offset: Optional[int] = None,
                    name: str = "emnist-letters", n_classes: Optional[int] = None) -> Dataset:
    """Load the common CSV export: one image per row, ``label,p0,...,p783`` (optional header line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and not lines[0].split(",")[0].strip().lstrip("-").isdigit():
        lines = lines[1:]                      # header
    if not lines:
        raise DataError(f"{path}: no data rows")
    try:
        arr = np.array([[int(v) for v in ln.split(",")] for ln in lines], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{path}: non-integer value ({exc})") from None
    except Exception:
        widths = sorted({len(ln.split(",")) for ln in lines})
        raise DataError(f"{path}: rows have different numbers of fields {widths}") from None
    if arr.ndim != 2:
        widths = sorted({len(ln.split(",")) for ln in lines})
        raise DataError(f"{path}: rows have different numbers of fields {widths}")
    side = int(round(np.sqrt(arr.shape[1] - 1)))
    if side * side != arr.shape[1] - 1:
        raise DataError(f"{path}: {arr.shape[1]} fields per row; expected label + a square image (e.g. 1 + 784)")
    if arr[:, 1:].min() < 0 or arr[:, 1:].max() > 255:
        raise DataError(f"{path}: pixel values outside 0..255")
    imgs = arr[:, 1:].astype(np.uint8).reshape(-1, side, side)
    if transpose:
        imgs = imgs.transpose(0, 2, 1)
    return _finish(imgs, arr[:, 0], label_offset, name, n_classes, str(path))


def _finish(imgs: np.ndarray, labels: np.ndarray, label_offset: Optional[int], name: str,
            n_classes: Optional[int], where: str) -> Dataset:
    if len(labels) == 0:
        raise DataError(f"{where}: empty data set")
    if label_offset is None:
        label_offset = 1 if labels.min() >= 1 else 0
    y = labels - label_offset
    if y.min() < 0:
        raise DataError(f"{where}: label {labels.min()} below the offset {label_offset}")
    k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.max() >= k:
        raise DataError(f"{where}: label {labels.max()} out of range for {k} classes")
    if n_classes is None and k > MAX_LETTER_CLASSES:
        # Inferred from the largest label: one corrupt byte would otherwise make a model with hundreds of classes.
        count = int(np.sum(y == k - 1))
        raise DataError(f"{where}: label {int(labels.max())} ({count} sample(s)) is outside the letters' "
                        f"{label_offset}..{MAX_LETTER_CLASSES - 1 + label_offset}: a corrupt label file? "
                        "Set data.n_classes to use it anyway")
    x = np.ascontiguousarray(imgs, dtype=np.float32) / np.float32(255.0)
    return Dataset(x, y.astype(np.int64), k, name, synthetic=False)


def find_emnist_dir(path: Optional[PathLike] = None) -> Optional[Path]:
    """Where the real EMNIST files live: explicit path, $AMC_DATA_DIR, ../shared/data/emnist-letters-am, data/."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = (REPO_ROOT / p) if not p.exists() else p
        return p
    if os.environ.get(ENV_VAR):
        # A folder the user named is used or refused, never silently swapped for another data set.
        named = Path(os.environ[ENV_VAR]).expanduser()
        if not named.is_dir():
            raise DataError(f"${ENV_VAR} = {named}: no such directory")
        try:
            _pick_files(named)
        except DataError as exc:
            raise DataError(f"${ENV_VAR} = {named}: {exc}") from None
        return named
    candidates = [REPO_ROOT.parent / "shared" / "data" / "emnist-letters-am", REPO_ROOT / "data" / "emnist",
                   REPO_ROOT / "data"]
    for c in candidates:
        if c.is_dir() and _pick_files(c, quiet=True) is not None:
            return c
    return None


def _pick_files(directory: Path, quiet: bool = False, split: str = "train"):
    """Find (kind, images, labels) or (kind, csv) in a directory. Prefers the requested split."""
    files = sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []
    imgs = [p for p in files if "images-idx3" in p.name]
    labs = [p for p in files if "labels-idx1" in p.name]

    def prefer(ps):
        hit = [p for p in ps if f"-{split}-" in p.name]
        return (hit or ps)[0]

    if imgs and labs:
        im = prefer(imgs)
        lab = directory / im.name.replace("images-idx3", "labels-idx1")
        if not lab.exists():
            if quiet:
                return None
            raise DataError(f"{lab}: file not found (label file matching {im.name})")
        return ("idx", im, lab)
    csvs = [p for p in files if p.name.endswith(".csv") or p.name.endswith(".csv.gz")]
    if csvs:
        return ("csv", prefer(csvs))
    if quiet:
        return None
    raise DataError(f"{directory}: no EMNIST files found (expected *images-idx3-ubyte[.gz] + *labels-idx1-ubyte[.gz] "
                    f"or a *.csv export)")


def load_emnist_dir(directory: PathLike, split: str = "train", fmt: str = "auto",
                    n_classes: Optional[int] = None) -> Dataset:
    directory = Path(directory)
    if directory.is_file():
        if fmt == "csv" or directory.name.endswith((".csv", ".csv.gz")):
            return load_emnist_csv(directory, n_classes=n_classes, name=_name_for(directory))
        raise DataError(f"{directory}: a single file must be a CSV export; give the directory for IDX files")
    if not directory.is_dir():
        raise DataError(f"{directory}: data directory not found (set data.path or ${ENV_VAR})")
    pick = _pick_files(directory, split=split)
    if fmt not in ("auto", pick[0]):
        raise DataError(f"{directory}: asked for format {fmt!r} but found {pick[0]} files")
    name = _name_for(pick[1])
    if pick[0] == "idx":
        return load_emnist_idx(pick[1], pick[2], name=name, n_classes=n_classes)
    return load_emnist_csv(pick[1], name=name, n_classes=n_classes)


def _name_for(p: Path) -> str:
    n = p.name
    for suffix in (".gz", ".csv", "-images-idx3-ubyte", "-labels-idx1-ubyte"):
        n = n[: -len(suffix)] if n.endswith(suffix) else n
    return n or "emnist"


# ---------------------------------------------------------------------------------------------------------
# Synthetic handwriting-style letters
# ---------------------------------------------------------------------------------------------------------
FONT_FILES = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
              "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Oblique.ttf", "cmss10.ttf",
              "cmr10.ttf", "cmtt10.ttf", "STIXGeneralItalic.ttf", "STIXGeneral.ttf"]
TEMPLATE = 64          # high-resolution template side (pixels)
GLYPH_BOX = 48         # the glyph's larger side in the template
_TEMPLATE_CACHE: dict = {}


def _render_glyph(ch: str, font_path: str, supersample: int = 2) -> Optional[np.ndarray]:
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    try:
        path = TextPath((0, 0), ch, size=100, prop=FontProperties(fname=font_path))
    except Exception:
        return None
    verts = path.vertices
    if len(verts) == 0:
        return None
    lo, hi = verts.min(0), verts.max(0)
    size = float(max(hi - lo))
    if size <= 0:
        return None
    scale = GLYPH_BOX / size
    center = (lo + hi) / 2
    n = TEMPLATE * supersample
    c = (np.arange(n) + 0.5) / supersample - TEMPLATE / 2        # template pixel centres, origin mid-canvas
    gx, gy = np.meshgrid(c, -c)                                  # image rows go down, glyph y goes up
    pts = np.stack([gx.ravel() / scale + center[0], gy.ravel() / scale + center[1]], 1)
    # even-odd rule over the glyph's closed contours (holes of 'o', 'a', 'B' stay empty for every font)
    from matplotlib.path import Path as MplPath

    inside = np.zeros(len(pts), dtype=bool)
    for poly in path.to_polygons(closed_only=True):
        if len(poly) < 3:
            continue
        pl, ph = poly.min(0), poly.max(0)
        box = (pts[:, 0] >= pl[0]) & (pts[:, 0] <= ph[0]) & (pts[:, 1] >= pl[1]) & (pts[:, 1] <= ph[1])
        sel = np.flatnonzero(box)
        if len(sel):
            inside[sel] ^= MplPath(poly).contains_points(pts[sel])
    inside = inside.reshape(n, n).astype(np.float32)
    img = inside.reshape(TEMPLATE, supersample, TEMPLATE, supersample).mean((1, 3))
    return img if img.sum() > 0 else None


def _templates(n_classes: int):
    """(T, 64, 64) float32 glyph templates and their class ids: each letter's lower- and upper-case in every font."""
    key = n_classes
    if key not in _TEMPLATE_CACHE:
        import matplotlib
        from scipy import ndimage

        font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        fonts = [str(font_dir / f) for f in FONT_FILES if (font_dir / f).exists()]
        if not fonts:
            raise DataError(f"{font_dir}: none of the matplotlib fonts {FONT_FILES} found")
        tmpl, cls = [], []
        for k in range(n_classes):
            for ch in (chr(ord("a") + k), chr(ord("A") + k)):
                for f in fonts:
                    g = _render_glyph(ch, f)
                    if g is None:
                        continue
                    tmpl.append(g)
                    cls.append(k)
        t = np.stack(tmpl).astype(np.float32)
        # stroke-width variants are drawn per sample by mixing a thinned and a thickened copy
        thin = np.stack([ndimage.grey_erosion(x, size=(3, 3)) for x in t])
        thick = np.stack([ndimage.grey_dilation(x, size=(5, 5)) for x in t])
        _TEMPLATE_CACHE[key] = (thin, t, thick, np.array(cls, dtype=np.int64))
    return _TEMPLATE_CACHE[key]


def synthetic_letters(n: int, n_classes: int = 26, seed: int = 0, size: int = 28,
                      name: str = SYNTHETIC_NAME) -> Dataset:
    """``n`` synthetic handwriting-style letters, balanced over classes, fully determined by ``seed``.

    Each image: a glyph (lower or upper case, one of ~12 matplotlib fonts) with random stroke width, rotation,
    shear, anisotropic scale, translation and a smooth elastic displacement field, sampled to ``size`` x
    ``size`` with anti-aliasing, then a light blur and a little pixel noise (EMNIST-like appearance).
    """
    from scipy import ndimage

    if not 1 <= n_classes <= 26:
        raise ValueError(f"n_classes must be in 1..26, got {n_classes}")
    thin, mid, thick, tcls = _templates(n_classes)
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(n_classes), n // n_classes + 1)[:n]
    rng.shuffle(y)
    # template choice within the class
    per_class = [np.flatnonzero(tcls == k) for k in range(n_classes)]
    pick = np.array([per_class[k][j % len(per_class[k])] for k, j in
                     zip(y, rng.integers(0, 1 << 30, size=n))], dtype=np.int64)
    # stroke width: interpolate thin -> mid -> thick
    w = rng.uniform(-1.0, 1.0, n).astype(np.float32)

    # affine map from output pixel (centred) to template pixel (centred)
    ang = rng.normal(0, 0.18, n).clip(-0.45, 0.45)
    shear = rng.normal(0, 0.18, n).clip(-0.45, 0.45)
    sc = rng.uniform(0.8, 1.15, n)
    asp = np.exp(rng.normal(0, 0.12, n))
    sx, sy = sc * asp, sc / asp
    tx, ty = rng.normal(0, 1.0, (2, n)).clip(-2.5, 2.5)
    ratio = GLYPH_BOX / 20.0          # glyph fills ~20 px of the 28-px output (EMNIST keeps a 4-px border)
    cos, sin = np.cos(ang), np.sin(ang)
    # forward: p_out = R @ S @ Sh @ p_tmpl / ratio ; we need the inverse for sampling
    fwd = np.zeros((n, 2, 2))
    fwd[:, 0, 0] = cos * sx
    fwd[:, 0, 1] = cos * sx * shear - sin * sy
    fwd[:, 1, 0] = sin * sx
    fwd[:, 1, 1] = sin * sx * shear + cos * sy
    inv = np.linalg.inv(fwd) * ratio                                 # (n, 2, 2) output px -> template px

    c = np.arange(size) - (size - 1) / 2
    oy, ox = np.meshgrid(c, c, indexing="ij")
    # elastic field: smoothed noise, in output pixels
    alpha = rng.uniform(0.5, 1.6, n)[:, None, None]
    disp = rng.standard_normal((2, n, size, size))
    disp = ndimage.gaussian_filter(disp, sigma=(0, 0, 3.0, 3.0), mode="constant")
    disp /= disp.std(axis=(2, 3), keepdims=True) + 1e-8
    px = ox[None] - tx[:, None, None] + alpha * disp[0]
    py = oy[None] - ty[:, None, None] + alpha * disp[1]
    # template coordinates (row = y, col = x); centred -> index
    tcx = inv[:, 0, 0, None, None] * px + inv[:, 0, 1, None, None] * py + (TEMPLATE - 1) / 2
    tcy = inv[:, 1, 0, None, None] * px + inv[:, 1, 1, None, None] * py + (TEMPLATE - 1) / 2

    # anti-alias: each output pixel covers ~ratio template pixels; sample a pre-blurred template
    stack = np.concatenate([thin, mid, thick])
    stack = ndimage.gaussian_filter(stack, sigma=(0, ratio * 0.45, ratio * 0.45))
    T = len(mid)
    lo_idx = np.where(w < 0, pick, pick + T)
    hi_idx = np.where(w < 0, pick + T, pick + 2 * T)
    frac = np.where(w < 0, w + 1, w)[:, None, None]
    coords_lo = np.stack([np.broadcast_to(lo_idx[:, None, None], tcy.shape), tcy, tcx]).reshape(3, -1)
    coords_hi = np.stack([np.broadcast_to(hi_idx[:, None, None], tcy.shape), tcy, tcx]).reshape(3, -1)
    a = ndimage.map_coordinates(stack, coords_lo, order=1, mode="constant").reshape(n, size, size)
    b = ndimage.map_coordinates(stack, coords_hi, order=1, mode="constant").reshape(n, size, size)
    img = (1 - frac) * a + frac * b
    img = ndimage.gaussian_filter(img, sigma=(0, 0.5, 0.5))
    img *= rng.uniform(0.75, 1.0, (n, 1, 1)) / np.maximum(img.max(axis=(1, 2), keepdims=True), 1e-6)
    img += rng.normal(0, 0.02, img.shape)
    img = np.clip(img, 0, 1).astype(np.float32)
    return Dataset(img, y.astype(np.int64), n_classes, name, synthetic=True)


# ---------------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------------
def stratified_split(y: np.ndarray, n_train: int, n_test: int, seed: int = 0):
    """Seeded class-stratified split: (train_idx, test_idx), disjoint, class proportions kept in both."""
    y = np.asarray(y)
    n = len(y)
    if n_train + n_test > n:
        raise DataError(f"split asks for {n_train} + {n_test} samples but the data set has {n}")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    frac_test = n_test / (n_train + n_test)
    use_frac = (n_train + n_test) / n
    tr, te = [], []
    for k in classes:
        idx = rng.permutation(np.flatnonzero(y == k))
        m = int(round(len(idx) * use_frac))
        t = int(round(m * frac_test))
        te.append(idx[:t])
        tr.append(idx[t:m])
    tr, te = np.concatenate(tr), np.concatenate(te)
    # rounding per class can miss the requested sizes by a few samples: trim, or top up from unused ones
    used = np.zeros(n, dtype=bool)
    used[tr] = used[te] = True
    pool = rng.permutation(np.flatnonzero(~used))
    te = _resize(te, n_test, pool, rng)
    used[te] = True
    pool = rng.permutation(np.flatnonzero(~used))
    tr = _resize(tr, n_train, pool, rng)
    if len(tr) < n_train:
        # Tiny splits: trimming the test set freed samples the pool above did not see (no rng use, so every split
        # that was already full size stays as it was).
        taken = np.zeros(n, dtype=bool)
        taken[tr] = taken[te] = True
        tr = np.concatenate([tr, np.flatnonzero(~taken)[: n_train - len(tr)]])
    return rng.permutation(tr), rng.permutation(te)


def _resize(idx: np.ndarray, target: int, pool: np.ndarray, rng) -> np.ndarray:
    if len(idx) > target:
        return rng.permutation(idx)[:target]
    if len(idx) < target:
        return np.concatenate([idx, pool[: target - len(idx)]])
    return idx


def load_data(cfg) -> tuple[Dataset, Dataset]:
    """(train, test) for a ``training.config.DataConfig``."""
    source = cfg.source
    if source == SYNTHETIC_NAME:
        k = 26 if cfg.n_classes is None else cfg.n_classes
        full = synthetic_letters(cfg.n_train + cfg.n_test, n_classes=k, seed=cfg.seed)
    elif source == "emnist":
        directory = find_emnist_dir(cfg.path)
        if directory is None:
            raise DataError("no EMNIST data found: set data.path, or $AMC_DATA_DIR, or run `make data`; looked in "
                            f"${ENV_VAR}, {REPO_ROOT.parent / 'shared/data/emnist-letters-am'}, {REPO_ROOT / 'data'}")
        full = load_emnist_dir(directory, fmt=cfg.format, n_classes=cfg.n_classes)
    else:
        raise DataError(f"unknown data source {source!r}; use '{SYNTHETIC_NAME}' or 'emnist'")
    if cfg.n_train < full.n_classes:
        raise DataError(f"data.n_train = {cfg.n_train} is smaller than the {full.n_classes} classes of {full.label}: "
                        "every class needs at least one training image")
    tr, te = stratified_split(full.y, cfg.n_train, cfg.n_test, seed=cfg.seed)
    return full.subset(tr), full.subset(te)
