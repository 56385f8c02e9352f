"""EMNIST letters for the torch examples, and a plain training loop that any torch optimizer drives.

``load_letters(path, n_train, n_test, seed)`` reads the real EMNIST letters files (an explicit folder, else
``$AMC_DATA_DIR``, else ``../shared/data/emnist-letters-am`` beside the checkout, else ``data/emnist``) through the
NumPy loop's loader and splits them class-stratified; no data found is an error, never another data set.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from training.data import DataError, ENV_VAR, find_emnist_dir, load_emnist_dir, stratified_split


def load_letters(path: Optional[str] = None, n_train: int = 8000, n_test: int = 2000, seed: int = 0):
    """((x_train, y_train), (x_test, y_test), class names) as float32/int64 tensors, x (N, 1, 28, 28) in [0, 1]."""
    directory = find_emnist_dir(path)
    if directory is None:
        raise DataError(f"no EMNIST letters found: pass a folder, set ${ENV_VAR}, or place the files in "
                        "../shared/data/emnist-letters-am or data/emnist (`make data`)")
    full = load_emnist_dir(directory)
    tr, te = stratified_split(full.y, n_train, n_test, seed=seed)
    tensors = [(torch.from_numpy(full.x[i][:, None].copy()), torch.from_numpy(full.y[i].copy())) for i in (tr, te)]
    return tensors[0], tensors[1], full.class_names[:full.n_classes]


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    was = model.training
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    model.train(was)
    return hits / len(x)


def train_epochs(model: torch.nn.Module, opt: torch.optim.Optimizer, train, test, epochs: float = 1.0,
                 batch: int = 64, seed: int = 0, log: Optional[Callable[[str], None]] = print,
                 evaluate_every: Optional[int] = None) -> dict:
    """The usual loop (zero_grad, cross-entropy, backward, step) for ``epochs`` (a fraction runs that share of the
    steps); test accuracy after every ``evaluate_every`` steps (default: once an epoch) and at the end."""
    x, y = train
    steps_per_epoch = -(-len(x) // batch)
    total = max(1, int(round(epochs * steps_per_epoch)))
    evaluate_every = evaluate_every or steps_per_epoch
    gen = torch.Generator().manual_seed(seed)
    history = {"step": [], "epoch": [], "test_accuracy": [], "loss": [], "seconds": 0.0}
    start, order, step = time.perf_counter(), None, 0
    model.train()
    while step < total:
        if step % steps_per_epoch == 0:
            order = torch.randperm(len(x), generator=gen)
        k = step % steps_per_epoch
        idx = order[k * batch:(k + 1) * batch]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        step += 1
        if step % evaluate_every == 0 or step == total:
            acc = accuracy(model, *test)
            history["step"].append(step)
            history["epoch"].append(step / steps_per_epoch)
            history["test_accuracy"].append(acc)
            if log:
                log(f"  step {step:4d} (epoch {step / steps_per_epoch:.2f}): loss {np.mean(history['loss'][-evaluate_every:]):.3f}, "
                    f"test accuracy {acc:.3f}")
    history["seconds"] = time.perf_counter() - start
    return history
