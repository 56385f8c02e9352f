"""Training inputs that used to be silently substituted or to crash after validation."""
import gzip
import json
import struct

import numpy as np
import pytest

from training import data as D
from training.config import ConfigError, config_from_dict
from training.data import DataError
from training.loop import TrainingError, read_log, save_checkpoint, train


def _write_idx(path, arr, magic):
    arr = np.asarray(arr, dtype=np.uint8)
    path.write_bytes(gzip.compress(struct.pack(">I", magic) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
                                   + arr.tobytes()))


def _emnist_dir(directory, labels):
    directory.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    _write_idx(directory / "emnist-letters-train-images-idx3-ubyte.gz", np.zeros((len(labels), 28, 28)),
               D.IMAGE_MAGIC)
    _write_idx(directory / "emnist-letters-train-labels-idx1-ubyte.gz", labels, D.LABEL_MAGIC)
    return directory


@pytest.mark.parametrize("state", ["missing", "empty", "incomplete"])
def test_amc_data_dir_that_cannot_be_used_is_an_error(tmp_path, monkeypatch, state):
    folder = tmp_path / "data"
    if state != "missing":
        folder.mkdir()
    if state == "incomplete":  # images without their labels
        _write_idx(folder / "emnist-letters-train-images-idx3-ubyte.gz", np.zeros((2, 28, 28)), D.IMAGE_MAGIC)
    monkeypatch.setenv("AMC_DATA_DIR", str(folder))
    with pytest.raises(DataError, match="AMC_DATA_DIR"):
        D.find_emnist_dir()


def test_amc_data_dir_that_holds_data_is_used(tmp_path, monkeypatch):
    folder = _emnist_dir(tmp_path / "data", [1, 2, 1, 2])
    monkeypatch.setenv("AMC_DATA_DIR", str(folder))
    assert D.find_emnist_dir() == folder


def test_one_corrupt_label_byte_is_an_error_not_a_200_class_model(tmp_path):
    labels = np.tile(np.arange(1, 14), 4)
    labels[7] = 200
    folder = _emnist_dir(tmp_path / "data", labels)
    with pytest.raises(DataError, match="label 200.*corrupt"):
        D.load_emnist_dir(folder)


@pytest.mark.parametrize("override, message", [
    ({"data": {"n_classes": 0}}, "n_classes must be >= 2"),
    ({"data": {"n_classes": 99}}, "at most 26 classes"),
    ({"data": {"n_train": 5}}, "every class needs at least one"),
    ({"model": {"kernel": 50}}, "kernel = 50 does not fit"),
    ({"model": {"pool": 7}}, "pool = 7 does not divide.*1, 2, 3, 4, 6, 8, 12, 24"),
])
def test_settings_that_used_to_crash_after_validation_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"name": "t", **override})


def test_tiny_split_fills_the_training_set():
    y = np.repeat(np.arange(26), 3)  # 78 samples, all asked for: the test set's trim used to starve training
    tr, te = D.stratified_split(y, 28, 50, seed=0)
    assert len(tr) == 28 and len(te) == 50 and not set(tr) & set(te)


def _cfg(tmp_path):
    return config_from_dict({"name": "t", "optimizer": {"name": "sgd", "lr": 0.05},
                             "train": {"epochs": 1, "batch_size": 16, "evals_per_epoch": 2, "progress": False,
                                       "out_dir": str(tmp_path / "run")}})


def test_full_disk_during_a_checkpoint_leaves_the_last_good_one_and_no_tmp(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"w": np.ones(3)}, {}, {"step": 1})
    good = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"w": np.zeros(3)}, {}, {"step": 2})
    assert path.read_bytes() == good and not (tmp_path / "checkpoint.npz.tmp").exists()


def test_resume_with_a_damaged_metrics_line_names_it_and_fresh(tmp_path, tiny):
    data = (tiny(64), tiny(32, seed=1))
    cfg = _cfg(tmp_path)
    cfg.train.epochs = 0.5
    train(cfg, data=data)
    log = tmp_path / "run" / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:20] + "\n"
    log.write_text("".join(lines))
    cfg.train.epochs = 1
    with pytest.raises(TrainingError, match=r"line 2 is damaged.*--fresh"):
        train(cfg, data=data)


def test_resume_drops_a_last_line_cut_short_by_a_crash(tmp_path, tiny):
    data = (tiny(64), tiny(32, seed=1))
    cfg = _cfg(tmp_path)
    cfg.train.epochs = 0.5
    train(cfg, data=data)
    log = tmp_path / "run" / "metrics.jsonl"
    log.write_text(log.read_text() + '{"event": "ev')
    cfg.train.epochs = 1
    train(cfg, data=data)
    assert all(isinstance(r, dict) for r in read_log(log))


def test_checkpoint_mismatch_names_fresh(tmp_path, tiny):
    data = (tiny(64), tiny(32, seed=1))
    cfg = _cfg(tmp_path)
    cfg.train.epochs = 0.5
    train(cfg, data=data)
    cfg.optimizer.lr = 0.01
    with pytest.raises(TrainingError, match="--fresh"):
        train(cfg, data=data)
