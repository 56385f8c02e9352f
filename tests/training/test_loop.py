import json

import numpy as np
import pytest

from training.config import ConfigError, config_from_dict, load_config
from training.loop import TrainingError, load_checkpoint, read_log, train
from training.optimizers import KFAC
from training.solvers import CircuitSolver


def _cfg(tmp_path, **opt):
    d = {"name": "t", "optimizer": {"name": "kfac", "lr": 0.05, "inverse_every": 3, **opt},
         "train": {"epochs": 2, "batch_size": 16, "evals_per_epoch": 4, "progress": False,
                   "out_dir": str(tmp_path / "run")}}
    return config_from_dict(d)


def test_train_logs_and_learns(tmp_path, tiny):
    data = (tiny(96), tiny(48, seed=1))
    res = train(_cfg(tmp_path), data=data)
    recs = read_log(tmp_path / "run" / "metrics.jsonl")
    evals = [r for r in recs if r["event"] == "eval"]
    assert recs[0]["event"] == "start" and recs[-1]["event"] == "end"
    assert [r["epoch"] for r in evals] == [0, 0.333333, 0.5, 0.833333, 1.0, 1.333333, 1.5, 1.833333, 2.0] or \
        len(evals) == 2 * 4 + 1
    assert evals[-1]["test_acc"] > 0.8 and evals[-1]["test_acc"] > evals[0]["test_acc"]
    assert {"loss", "train_acc", "test_acc", "wall_time_s", "optimizer_stats"} <= set(evals[-1])
    assert "synthetic" in evals[-1]["dataset"]


def test_non_finite_loss_stops_with_step_and_keeps_log_and_checkpoint(tmp_path, tiny):
    train_set = tiny(96)
    bad = train_set.x.copy()
    perm = np.random.default_rng([0, 0, 7]).permutation(96)     # epoch-0 order of the loop
    bad[perm[16 * 4]] = np.nan                                  # first sample of step 4 (6 steps per epoch)
    train_set.x = bad
    cfg = _cfg(tmp_path, name="sgd", momentum=0.9)
    with pytest.raises(TrainingError, match=r"non-finite training loss.*step 4 \(epoch 0\.667\)"):
        train(cfg, data=(train_set, tiny(48, seed=1)))
    recs = read_log(tmp_path / "run" / "metrics.jsonl")     # every line parses
    assert recs[-1]["event"] == "error" and "step 4" in recs[-1]["message"]
    assert [r["step"] for r in recs if r["event"] == "eval"] == [0, 2, 3]
    params, state, meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["step"] == 3 and all(np.all(np.isfinite(v)) for v in params.values())


def test_resume_continues_identically(tmp_path, tiny):
    data = (tiny(96), tiny(48, seed=1))
    full = train(_cfg(tmp_path / "a"), data=data)
    cfg = _cfg(tmp_path / "b")
    cfg.train.max_steps = 5                                       # stops mid-epoch, after the eval at step 5
    part = train(cfg, data=data)
    assert part.stopped == "max_steps" and part.steps == 5
    cfg.train.max_steps = None
    resumed = train(cfg, data=data)
    for k in full.params:
        np.testing.assert_array_equal(full.params[k], resumed.params[k])
    a = [r["test_acc"] for r in read_log(tmp_path / "a" / "run" / "metrics.jsonl") if r["event"] == "eval"]
    b = [r["test_acc"] for r in read_log(tmp_path / "b" / "run" / "metrics.jsonl") if r["event"] == "eval"]
    assert a == b


def test_resume_rejects_changed_config(tmp_path, tiny):
    data = (tiny(96), tiny(48, seed=1))
    cfg = _cfg(tmp_path)
    cfg.train.max_steps = 3
    train(cfg, data=data)
    cfg2 = _cfg(tmp_path, damping=0.5)
    with pytest.raises(TrainingError, match="different configuration.*optimizer.damping"):
        train(cfg2, data=data)


class _FailEvery:
    deterministic = linear = True

    def __init__(self, k):
        self.k, self.calls = k, 0

    def solve(self, H, B):
        self.calls += 1
        if self.calls % self.k == 0:
            from amc.errors import SimulationError
            raise SimulationError("simulated ngspice failure")
        return np.linalg.solve(H, B)


def test_fallback_counted_in_training_log(tmp_path, tiny):
    data = (tiny(96), tiny(48, seed=1))
    res = train(_cfg(tmp_path), data=data, solver=CircuitSolver(_FailEvery(4)))
    st = res.optimizer_stats
    assert st["fallbacks"] == st["solver"]["failures"] == st["solver"]["exceptions"] > 0
    last = [r for r in read_log(tmp_path / "run" / "metrics.jsonl") if r["event"] == "eval"][-1]
    assert last["optimizer_stats"]["fallbacks"] == st["fallbacks"] == last["hardware"]["fallbacks"]
    assert last["hardware"]["fallback_reasons"] == {"ngspice failure": st["fallbacks"]}
    with pytest.raises(TrainingError, match=r"solver failure at step 0.*simulated ngspice failure"):
        train(_cfg(tmp_path / "stop", on_circuit_failure="stop"), data=data, solver=CircuitSolver(_FailEvery(1)))


def test_config_rejects_unknown_keys_and_applies_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optimizer:\n  name: kfac\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'optimizer.lrr'.*allowed keys in optimizer: name, lr"):
        load_config(p)
    p.write_text("optimizer:\n  name: kfac\n  damping: 1e-2\n")
    cfg = load_config(p, ["optimizer.lr=0.5", "train.epochs=3", "optimizer.solver.backend=numpy"])
    assert cfg.optimizer.lr == 0.5 and cfg.optimizer.damping == 0.01 and cfg.train.epochs == 3.0
    assert cfg.name == "c"
    with pytest.raises(ConfigError, match="unknown key 'train.epoch'"):
        load_config(p, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="optimizer.name must be one of"):
        load_config(p, ["optimizer.name=lbfgs"])


def test_shipped_configs_load():
    from pathlib import Path

    from training.config import load_compare_config
    root = Path(__file__).resolve().parents[2] / "configs"
    for p in sorted((root / "train").glob("*.yaml")):
        load_config(p)
    names = []
    for p in sorted((root / "compare").glob("*.yaml")):
        names.append(load_compare_config(p).name)
    assert "emnist-am" in names and "synthetic-letters" in names


def test_model_init_and_ema_warmup_config():
    from training.optimizers import make_optimizer
    from training.model import ConvNet
    cfg = config_from_dict({"model": {"init": "he"}, "optimizer": {"name": "kfac", "ema_warmup": False}})
    assert cfg.model.init == "he" and cfg.optimizer.ema_warmup is False
    assert make_optimizer(cfg.optimizer, layers=ConvNet().layers).ema_warmup is False
    default = config_from_dict({})
    assert default.model.init == "torch" and default.optimizer.ema_warmup is True
    with pytest.raises(ConfigError, match="model.init must be one of"):
        config_from_dict({"model": {"init": "xavier"}})


@pytest.mark.slow
def test_resumed_circuit_run_keeps_one_hardware_account(tmp_path, tiny):
    """The account lives with the optimiser: a resumed run ends with the same counts as an uninterrupted one,
    K-FAC's own digital application of extracted inverses counted once."""
    data = (tiny(64), tiny(32, seed=1))
    solver = {"backend": "circuit", "circuit": "ideal", "method": "direct"}

    def final_account(root, stop_at=None):
        cfg = _cfg(root, linear_response=True, solver=solver)
        cfg.train.epochs = 1
        if stop_at is not None:
            cfg.train.max_steps = stop_at
            train(cfg, data=data)
            cfg.train.max_steps = None
        train(cfg, data=data)
        return [r for r in read_log(root / "run" / "metrics.jsonl") if r["event"] == "eval"][-1]["hardware"]

    full, resumed = final_account(tmp_path / "a"), final_account(tmp_path / "b", stop_at=2)
    assert full["digital_flops"] > 0 and full["programmings"] > 0
    for key in ("programmings", "cells_programmed", "inv_settles", "conversions", "digital_flops", "solves"):
        assert resumed[key] == full[key], key
