"""K-FAC work of a network, and the analog operation counts of each dataflow that does it.

Factor sizes come from the architecture (Grosse & Martens 2016 for conv layers): a layer with C_in input channels,
a k x k kernel and C_out outputs has an A factor of C_in k k (+1 when the layer has a bias) and a G factor of C_out.
Per training step the preconditioned gradient G^-1 dW A^-1 needs C_out solves with A (the rows of dW) and A-dim
solves with G; every ``inverse_every`` steps the factors change and the arrays are programmed again.

Dataflows on arrays of at most ``array_size`` rows are priced by the plan of the method that runs them
(``amc/methods/plan.py``; ``tests/methods/test_plan.py`` holds each plan to what a run counts), so the ledger has no
count model of its own. Factors are Jacobi-equilibrated, as the K-FAC recipe does:
- ``direct`` / ``blockamc``: method ``direct`` (one INV settle per right-hand side) for a factor that fits one array,
  method ``blockamc`` (Pan et al., DATE 2024: Schur-complement partitioning over arrays, recursively) above it.
- ``hpinv``: method ``hp-inv`` with PCG (the ``hpinv-pcg`` preset, Zuo et al. 2025): ``iterations`` x (INV of every
  block-Jacobi block + ``slices`` bit-sliced MVM reads of the whole factor) per right-hand side.
- ``repast``: method ``repast`` (RePAST-style, Zhao et al. 2022): once per inverse update the inverse is computed
  column by column by HP-INV and written into bit-sliced MVM arrays; every step applies it by MVM reads (one MVM
  section serves both, so ``slices`` and ``inverse_slices`` must be equal).
"""
from __future__ import annotations

from dataclasses import dataclass

from amc.errors import InputError
from amc.hw.counters import OperationCounts
from amc.methods.plan import plan_of

DATAFLOWS = ("direct", "hpinv", "repast", "blockamc")
# How an INV array is accepted after a write: "oracle" = the controller analyses the programmed matrix digitally
# (stability eigenvalues, input scale, shift check: amc.cost.kfac.CONTROLLER_FLOPS_PER_N3), the `shift: auto` recipe;
# "verify" = the read-verified controller (amc/hw/controller.py, `shift: verify`): Lanczos settles through the array,
# priced by the methods' plan (amc/methods/plan.py verify_reads).
CONTROLLERS = ("oracle", "verify")


@dataclass(frozen=True)
class LayerFactors:
    """K-FAC factor sizes of one layer: A (inputs, with bias coordinate) and G (output gradients)."""

    name: str
    a_dim: int
    g_dim: int

    @property
    def a_rhs(self) -> int:   # A^-1 applied to dW^T: one right-hand side per output
        return self.g_dim

    @property
    def g_rhs(self) -> int:   # G^-1 applied to (A^-1 dW^T)^T: one right-hand side per input coordinate
        return self.a_dim


def conv(name: str, c_in: int, c_out: int, k: int, bias: bool = True) -> LayerFactors:
    return LayerFactors(name, c_in * k * k + (1 if bias else 0), c_out)


def linear(name: str, d_in: int, d_out: int, bias: bool = True) -> LayerFactors:
    return LayerFactors(name, d_in + (1 if bias else 0), d_out)


def reference_cnn(channels: int = 7, pool: int = 8, image: int = 28, kernel: int = 5, classes: int = 13,
                  in_channels: int = 1) -> list[LayerFactors]:
    """The project's letter CNN (training/model.py): conv k x k C_in -> C, max-pool P, linear -> classes."""
    conv_out = image - kernel + 1
    if conv_out <= 0 or conv_out % pool:
        raise InputError(f"conv output {conv_out} (image {image}, kernel {kernel}) is not a multiple of pool {pool}")
    pooled = conv_out // pool
    return [conv("conv", in_channels, channels, kernel), linear("fc", channels * pooled * pooled, classes)]


def cnn4(classes: int = 10) -> list[LayerFactors]:
    """A 4-layer CNN for 28 x 28 inputs (LeNet-like: conv5 1->32, pool 2, conv5 32->64, pool 2, fc 1024->128, fc).

    Our stand-in for the seed paper's 4-layer CNN, whose exact layer table we could not consult here. Trained as
    training/cnn.py LayeredCNN.cnn4 (model.arch: cnn4; 13 classes on EMNIST a-m): `amc cost training` and
    `amc cost network cnn4 --classes 13 --study DIR` price it at the loop lambda_min its circuit run measured."""
    return [conv("conv1", 1, 32, 5), conv("conv2", 32, 64, 5), linear("fc1", 64 * 4 * 4, 128),
            linear("fc2", 128, classes)]


def resnet18_cifar(classes: int = 10) -> list[LayerFactors]:
    """ResNet-18 for 32 x 32 images (He et al. 2016, CIFAR stem: 3x3 conv, no max-pool): 17 convs, 3 1x1
    shortcut convs and the linear layer.

    Convolutions have no bias (batch norm follows them; BN parameters are left to SGD, as in kfac-pytorch)."""
    layers = [conv("conv1", 3, 64, 3, bias=False)]
    c_in = 64
    for stage, c in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            first = block == 0
            layers.append(conv(f"layer{stage}.{block}.conv1", c_in if first else c, c, 3, bias=False))
            layers.append(conv(f"layer{stage}.{block}.conv2", c, c, 3, bias=False))
            if first and c_in != c:
                layers.append(conv(f"layer{stage}.{block}.shortcut", c_in, c, 1, bias=False))
        c_in = c
    layers.append(linear("fc", 512, classes))
    return layers


ARCHITECTURES = {"reference": reference_cnn, "cnn4": cnn4, "resnet18": resnet18_cifar}


@dataclass(frozen=True)
class Dataflow:
    name: str = "direct"
    iterations: int = 3          # hpinv/repast: refinement iterations per solve
    slices: int = 6              # hpinv/repast: bit slices of the factor in the residual MVM (3 bits each: 18 bits)
    inverse_slices: int = 6      # repast: bit slices of the stored inverse
    controller: str = "oracle"   # direct/blockamc: how an INV array is accepted after a write (CONTROLLERS)
    coupling_slices: int = 1     # direct/blockamc: bit slices of BlockAMC's coupling MVM arrays (above the size)

    def __post_init__(self):
        if self.name not in DATAFLOWS:
            raise InputError(f"unknown dataflow {self.name!r}; known: {', '.join(DATAFLOWS)}")
        if self.controller not in CONTROLLERS:
            raise InputError(f"unknown controller {self.controller!r}; known: {', '.join(CONTROLLERS)}")
        if self.controller == "verify" and self.name not in ("direct", "blockamc"):
            raise InputError(f"controller 'verify' is priced for the direct and blockamc dataflows, not {self.name!r}")
        for key in ("iterations", "slices", "inverse_slices", "coupling_slices"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"dataflow {key} must be a positive integer, got {value!r}")

    def describe(self) -> str:
        if self.name == "hpinv":
            return f"HP-INV, {self.iterations} iterations, {self.slices} MVM slices"
        if self.name == "repast":
            return (f"RePAST-style (inverse by HP-INV {self.iterations} it., {self.inverse_slices}-slice MVM "
                    f"apply)")
        accepted = ("read-verified controller" if self.controller == "verify"
                    else "controller analyses the written matrix")
        couplings = f" with {self.coupling_slices}-slice couplings" if self.coupling_slices > 1 else ""
        return f"one-step INV (BlockAMC above the array size{couplings}), {accepted}"


def _method(flow: Dataflow, d: int, size: int):
    """The method object a dataflow runs for one d x d factor on arrays of ``size`` (constructed, never run: only
    its plan is read). Factors are Jacobi-equilibrated, as the K-FAC recipe does."""
    from amc.config import CircuitConfig
    from amc.methods import MethodSolver
    circuit = CircuitConfig.preset("ideal").replace(**{"io.equilibrate": True})
    if flow.name in ("direct", "blockamc"):
        # controller oracle (shift auto): its digital work is priced by amc.cost.kfac; verify: the plan has its reads
        shift = {"shift": "verify"} if flow.controller == "verify" else {}
        if d <= size:
            return MethodSolver(circuit, method={"name": "direct", "equilibrate": True, **shift})._impl
        return MethodSolver(circuit, method={"preset": "blockamc", "array_size": size, **shift,
                                             "mvm": {"slices": flow.coupling_slices}})._impl
    mvm = {"slices": flow.slices, "array_size": size}
    if flow.name == "hpinv":
        return MethodSolver(circuit, method={"preset": "hpinv-pcg", "iterations": flow.iterations, "shift": None,
                                             "array_size": size, "mvm": mvm})._impl
    if flow.slices != flow.inverse_slices:
        raise InputError("repast: the method's one MVM section holds both the residual and the inverse, so "
                         f"slices ({flow.slices}) and inverse_slices ({flow.inverse_slices}) must be equal")
    return MethodSolver(circuit, method={"preset": "repast", "iterations": flow.iterations, "shift": None,
                                         "mvm": mvm})._impl


def inv_plan(d: int, size: int) -> tuple[OperationCounts, OperationCounts]:
    """(per programming, per solve of one column) of a one-step INV solve of a d x d system on arrays of size x size
    (BlockAMC above the array size): the methods' own plan (amc/methods/plan.py)."""
    plan = plan_of(_method(Dataflow("direct"), d, size), d, 1)
    return plan.programming, plan.solve


def factor_counts(d: int, rhs_per_step: int, size: int, flow: Dataflow) -> tuple[OperationCounts, OperationCounts]:
    """(per inverse update, per step) counts of one factor of dimension d with ``rhs_per_step`` solves a step:
    the plan of the method that dataflow runs (one count model with the methods; tests/methods/test_plan.py)."""
    if d < 1 or rhs_per_step < 0 or size < 1:
        raise InputError(f"factor dimension {d}, right-hand sides {rhs_per_step}, array size {size}: must be positive")
    method = _method(flow, d, size)
    plan = plan_of(method, d, max(rhs_per_step, 1))
    return plan.programming, (plan.solve if rhs_per_step else OperationCounts())


def kfac_flops(layers: list[LayerFactors]) -> tuple[float, float]:
    """Digital K-FAC work: (flops per inverse update: an SPD inverse per factor, d^3 = Cholesky d^3/3 + inverse
    from the factor 2 d^3/3; flops per step: G^-1 dW A^-1 by two matmuls, 2 out in (in + out))."""
    inverse = sum(float(l.a_dim) ** 3 + float(l.g_dim) ** 3 for l in layers)
    step = sum(2.0 * l.g_dim * l.a_dim * (l.a_dim + l.g_dim) for l in layers)
    return inverse, step
