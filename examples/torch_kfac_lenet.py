"""Train torch models we did not write for the NumPy loop (LeNet-5, a small ResNet) on real EMNIST letters with
SGD-momentum, exact K-FAC and circuit K-FAC (``training.torch.AnalogKFAC``), and print each run's hardware account.

    python examples/torch_kfac_lenet.py                                  # both models, all three optimizers
    python examples/torch_kfac_lenet.py --models lenet5 --optimizers kfac-circuit --epochs 0.5 --n-train 2000
    python examples/torch_kfac_lenet.py --data /path/to/emnist            # else $AMC_DATA_DIR, ../shared/data/...

The circuit run is the shipped one-step configuration (configs/train/emnist-am64-kfac-direct.yaml): every factor
solve one settle of its programmed array, 16-level TaOx cells with 3 % programming error, AD823-class op-amps,
Jacobi equilibration, ``shift: auto``; factors larger than ``--max-block`` are block-diagonal so each block fits one
array of that size. No EMNIST files is an error (exit 2), never another data set.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data import DataError, find_emnist_dir  # noqa: E402

MODELS = ("lenet5", "resnet")
OPTIMIZERS = ("sgd", "kfac-exact", "kfac-circuit")
CIRCUIT = {"backend": "circuit", "circuit": {"preset": "rram", "device": {"levels": 16, "program_sigma": 0.03}},
           "method": {"name": "direct", "equilibrate": True, "operators": "extracted", "shift": "auto"}}


def make_optimizer(name: str, model, args):
    import torch
    from training.torch import AnalogKFAC
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.sgd_lr, momentum=0.9)
    solver = CIRCUIT if name == "kfac-circuit" else None
    return AnalogKFAC(model, solver=solver, lr=args.lr, damping=args.damping, factor_decay=0.95,
                      inv_update_steps=args.inv_update_steps, kl_clip=args.kl_clip or None,
                      max_block=args.max_block, seed=args.seed)


def account_line(h: dict) -> str:
    cost = h.get("cost") or {}
    ledger = f"{cost['time_s'] * 1e3:.3g} ms, {cost['energy_j'] * 1e3:.3g} mJ" if "energy_j" in cost else \
        f"not priced ({cost.get('error', 'no cost')})"
    err = h.get("analog_error_mean")
    return (f"programmings {h['programmings']}, cells {h['cells_programmed']}, INV settles {h['inv_settles']}, "
            f"MVM reads {h['mvm_reads']}, conversions {h['conversions']}, ngspice runs {h['ngspice_runs']}, "
            f"digital flops {h['digital_flops']:.3g}, fallbacks {h['fallbacks']}/{h['solves']} "
            f"{h['fallback_reasons'] or ''}, analog error before refinement "
            f"{'n/a' if err is None else f'{err:.3f}'}, ledger {ledger}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet5,resnet", help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS), help=f"comma list of {', '.join(OPTIMIZERS)}")
    p.add_argument("--data", default=None, help="EMNIST letters folder (default: $AMC_DATA_DIR, ../shared/data/...)")
    p.add_argument("--n-train", type=int, default=8000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.03, help="K-FAC learning rate")
    p.add_argument("--sgd-lr", type=float, default=0.03)
    p.add_argument("--damping", type=float, default=1e-2)
    p.add_argument("--kl-clip", type=float, default=1e-3, help="kfac-pytorch's default; 0: off (the small ResNet "
                   "diverges without it at lr 0.03)")
    p.add_argument("--inv-update-steps", type=int, default=10)
    p.add_argument("--max-block", type=int, default=64, help="largest factor block (one array); 0: whole factors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    bad = [m for m in models if m not in MODELS] + [o for o in optimizers if o not in OPTIMIZERS]
    if bad or not models or not optimizers:
        print(f"error: unknown model or optimizer {', '.join(bad) or '(none given)'}; models: {', '.join(MODELS)}; "
              f"optimizers: {', '.join(OPTIMIZERS)}", file=sys.stderr)
        return 2
    if args.epochs <= 0 or args.n_train < 1 or args.n_test < 1 or args.batch < 1 or args.max_block < 0 or args.kl_clip < 0:
        print("error: --epochs, --n-train, --n-test and --batch must be positive, --max-block and --kl-clip >= 0", file=sys.stderr)
        return 2
    args.max_block = args.max_block or None
    try:
        find_emnist_dir(args.data)          # a missing folder is refused before torch loads
        import torch
        from training.torch import AnalogKFAC
        from training.torch.letters import load_letters, train_epochs
        from training.torch.models import LeNet5, SmallResNet
        train, test, _ = load_letters(args.data, args.n_train, args.n_test, args.seed)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    classes = {"lenet5": LeNet5, "resnet": SmallResNet}
    torch.set_num_threads(1)
    print(f"EMNIST letters: {len(train[0])} training / {len(test[0])} test images, "
          f"{int(train[1].max()) + 1} classes; {args.epochs:g} epochs, batch {args.batch}")
    results = []
    for m in models:
        for o in optimizers:
            torch.manual_seed(args.seed)
            model = classes[m](n_classes=int(train[1].max()) + 1)
            opt = make_optimizer(o, model, args)
            print(f"\n{m} / {o}: {opt if isinstance(opt, AnalogKFAC) else 'SGD(momentum 0.9)'}")
            hist = train_epochs(model, opt, train, test, epochs=args.epochs, batch=args.batch, seed=args.seed)
            hw = opt.hardware() if isinstance(opt, AnalogKFAC) else None
            print(f"  final test accuracy {hist['test_accuracy'][-1]:.3f} after {hist['epoch'][-1]:.2f} epochs, "
                  f"{hist['seconds']:.1f} s")
            if hw is not None:
                print("  hardware account: " + account_line(hw))
            results.append({"model": m, "optimizer": o, "test_accuracy": hist["test_accuracy"],
                            "epoch": hist["epoch"], "seconds": hist["seconds"], "hardware": hw})
    print("\n| model | optimizer | final test accuracy | epochs | s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['optimizer']} | {r['test_accuracy'][-1]:.3f} | {r['epoch'][-1]:.2f} | "
              f"{r['seconds']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
