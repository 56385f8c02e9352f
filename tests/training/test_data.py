import gzip
import struct

import numpy as np
import pytest

from training import data as D
from training.data import DataError


def write_idx(path, arr, magic, compress=True):
    arr = np.asarray(arr, dtype=np.uint8)
    raw = struct.pack(">I", magic) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.fixture
def idx_pair(tmp_path):
    rng = np.random.default_rng(0)
    upright = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    labels = np.array([1, 2, 3, 1, 2, 3], dtype=np.uint8)
    im = tmp_path / "emnist-letters-train-images-idx3-ubyte.gz"
    lb = tmp_path / "emnist-letters-train-labels-idx1-ubyte.gz"
    write_idx(im, upright.transpose(0, 2, 1), D.IMAGE_MAGIC)        # stored transposed, like EMNIST
    write_idx(lb, labels, D.LABEL_MAGIC)
    return im, lb, upright, labels


def test_idx_reads_transpose_and_shifts_labels(idx_pair):
    im, lb, upright, labels = idx_pair
    ds = D.load_emnist_idx(im, lb)
    np.testing.assert_allclose(ds.x, upright / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, labels - 1)
    assert ds.x.dtype == np.float32 and ds.n_classes == 3 and not ds.synthetic


def test_idx_directory_and_uncompressed(tmp_path, idx_pair):
    ds = D.load_emnist_dir(idx_pair[0].parent)
    assert len(ds) == 6
    write_idx(tmp_path / "raw-images-idx3-ubyte", np.zeros((2, 4, 4)), D.IMAGE_MAGIC, compress=False)
    assert D.read_idx(tmp_path / "raw-images-idx3-ubyte", D.IMAGE_MAGIC).shape == (2, 4, 4)


def test_idx_bad_magic(tmp_path, idx_pair):
    im, lb, *_ = idx_pair
    with pytest.raises(DataError, match=r"bad magic number 2049.*expected 2051") as e:
        D.load_emnist_idx(lb, lb)
    assert lb.name in str(e.value)


def test_idx_truncated_gzip(tmp_path, idx_pair):
    im, lb, *_ = idx_pair
    bad = tmp_path / "cut-images-idx3-ubyte.gz"
    bad.write_bytes(im.read_bytes()[:-40])
    with pytest.raises(DataError, match="truncated gzip") as e:
        D.load_emnist_idx(bad, lb)
    assert bad.name in str(e.value)


def test_idx_payload_truncated(tmp_path):
    p = tmp_path / "short-images-idx3-ubyte.gz"
    raw = struct.pack(">IIII", D.IMAGE_MAGIC, 3, 28, 28) + bytes(100)
    p.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="payload has 100 bytes"):
        D.read_idx(p, D.IMAGE_MAGIC)


def test_idx_count_mismatch(tmp_path, idx_pair):
    im, _, _, _ = idx_pair
    lb = tmp_path / "five-labels-idx1-ubyte.gz"
    write_idx(lb, [1, 2, 3, 1, 2], D.LABEL_MAGIC)
    with pytest.raises(DataError, match="count mismatch.*6 images.*5 labels"):
        D.load_emnist_idx(im, lb)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope-images.*not found"):
        D.load_emnist_idx(tmp_path / "nope-images-idx3-ubyte.gz", tmp_path / "x")


def test_csv_reads_transposed_rows(tmp_path):
    rng = np.random.default_rng(1)
    upright = rng.integers(0, 256, (4, 28, 28))
    labels = np.array([26, 1, 5, 26])
    rows = [",".join(map(str, [l] + list(img.T.ravel()))) for l, img in zip(labels, upright)]
    p = tmp_path / "emnist-letters-test.csv"
    p.write_text("\n".join(rows) + "\n")
    ds = D.load_emnist_csv(p, n_classes=26)
    np.testing.assert_allclose(ds.x * 255, upright, atol=1e-3)
    np.testing.assert_array_equal(ds.y, labels - 1)
    assert ds.n_classes == 26
    assert len(D.load_emnist_dir(tmp_path)) == 4


def test_csv_rejects_ragged_and_non_square(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("1,0,0,0,0\n2,0,0\n")
    with pytest.raises(DataError, match="bad.csv"):
        D.load_emnist_csv(p)
    p.write_text("1,0,0,0\n")
    with pytest.raises(DataError, match="square"):
        D.load_emnist_csv(p)


def test_synthetic_deterministic_shapes_and_classes():
    a = D.synthetic_letters(60, n_classes=5, seed=3)
    b = D.synthetic_letters(60, n_classes=5, seed=3)
    c = D.synthetic_letters(60, n_classes=5, seed=4)
    assert a.x.shape == (60, 28, 28) and a.x.dtype == np.float32
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    assert np.bincount(a.y).tolist() == [12] * 5
    assert a.synthetic and "synthetic" in a.label and a.name == "synthetic-letters"
    assert 0 <= a.x.min() and a.x.max() <= 1 and a.x.mean() > 0.03      # not blank
    # classes differ: class means are not all alike
    means = np.stack([a.x[a.y == k].mean(0) for k in range(5)])
    assert np.min([np.abs(means[i] - means[j]).sum() for i in range(5) for j in range(i)]) > 1.0


def test_stratified_split():
    y = np.repeat(np.arange(4), [40, 40, 40, 20])
    tr, te = D.stratified_split(y, 100, 30, seed=0)
    assert len(tr) == 100 and len(te) == 30 and not set(tr) & set(te)
    assert np.bincount(y[te], minlength=4).tolist() == [8, 8, 8, 4] or abs(np.bincount(y[te])[3] - 4) <= 1
    tr2, te2 = D.stratified_split(y, 100, 30, seed=0)
    np.testing.assert_array_equal(tr, tr2)
    with pytest.raises(DataError):
        D.stratified_split(y, 100, 50)


def test_find_emnist_dir_env(tmp_path, monkeypatch, idx_pair):
    monkeypatch.setenv("AMC_DATA_DIR", str(idx_pair[0].parent))
    assert D.find_emnist_dir() == idx_pair[0].parent
    assert D.find_emnist_dir(tmp_path / "explicit") == tmp_path / "explicit"
