"""K-FAC work of a network, and the analog operation counts of each dataflow that does it.

Factor sizes come from the architecture (Grosse & Martens 2016 for conv layers): a layer with C_in input channels,
a k x k kernel and C_out outputs has an A factor of C_in k k (+1 when the layer has a bias) and a G factor of C_out.
Per training step the preconditioned gradient G^-1 dW A^-1 needs C_out solves with A (the rows of dW) and A-dim
solves with G; every ``inverse_every`` steps the factors change and the arrays are programmed again.

Dataflows on arrays of at most ``array_size`` rows (counts per programming and per solve, composed by
``factor_counts``):
- ``direct``: one INV settle per right-hand side (DESIGN.md sec. 1); BlockAMC partitioning when d > array_size.
- ``hpinv``: HP-INV (Zuo et al. 2025): ``iterations`` x (one INV solve of the top slice + ``slices`` bit-sliced MVM
  reads of the whole factor for the residual) per right-hand side; digital shift-and-add and vector updates.
- ``repast``: RePAST-style (Zhao et al. 2022): once per inverse update the inverse is computed column by column
  with HP-INV and written into ``inverse_slices`` bit-sliced MVM arrays; every step applies it by MVM reads.
- ``blockamc`` (Pan et al., DATE 2024, as amc/methods/blockamc.py): H = [A B; C D] with the split a multiple of
  array_size near d/2; setup Y = A^-1 B (INV), S = D - C Y (MVM + digital); solve y1 = A^-1 g1, x2 = S^-1 (g2 - C y1),
  x1 = A^-1 (g1 - B x2); recursively. ``direct`` and ``hpinv`` use it for any factor above the array size.
Couplings and MVM slices bigger than an array are tiled: one read per tile, partial sums added digitally.
"""
from __future__ import annotations

from dataclasses import dataclass

from amc.errors import InputError
from amc.hw.counters import OperationCounts

DATAFLOWS = ("direct", "hpinv", "repast", "blockamc")


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

    Our stand-in for the seed paper's 4-layer CNN, whose exact layer table we could not consult here."""
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

    def __post_init__(self):
        if self.name not in DATAFLOWS:
            raise InputError(f"unknown dataflow {self.name!r}; known: {', '.join(DATAFLOWS)}")
        for key in ("iterations", "slices", "inverse_slices"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"dataflow {key} must be a positive integer, got {value!r}")

    def describe(self) -> str:
        if self.name == "hpinv":
            return f"HP-INV, {self.iterations} iterations, {self.slices} MVM slices"
        if self.name == "repast":
            return (f"RePAST-style (inverse by HP-INV {self.iterations} it., {self.inverse_slices}-slice MVM "
                    f"apply)")
        return {"direct": "one-step INV (BlockAMC above the array size)",
                "blockamc": "one-step INV (BlockAMC above the array size)"}[self.name]


def split_point(n: int, array_size: int) -> int:
    """First-block size of BlockAMC: a multiple of array_size close to n/2 (as amc.methods.blockamc.split_point)."""
    arrays = -(-n // array_size)
    return min(array_size * (-(-arrays // 2)), n - 1)


def _tiles(m: int, p: int, size: int) -> tuple[int, int]:
    return -(-m // size), -(-p // size)


def mvm_program(m: int, p: int, size: int, slices: int = 1) -> OperationCounts:
    """Programming a differential m x p matrix (``slices`` bit slices) tiled onto size x size arrays."""
    tr, tc = _tiles(m, p, size)
    return OperationCounts(programmings=tr * tc * slices, cells_programmed=2 * m * p * slices)


def mvm_apply(m: int, p: int, size: int, slices: int = 1) -> OperationCounts:
    """One product y = M v (M m x p, ``slices`` slices) on tiles: a read per tile, partial sums added digitally."""
    tr, tc = _tiles(m, p, size)
    return OperationCounts(mvm_reads=tr * tc * slices, dac_conversions=p * tr * slices,
                           adc_conversions=m * tc * slices,
                           digital_flops=float(m * (tc * slices - 1)))


def inv_plan(d: int, size: int) -> tuple[OperationCounts, OperationCounts]:
    """(per programming, per solve) counts of an INV solve of a d x d system on arrays of size x size."""
    if d <= size:
        return (OperationCounts(programmings=1, cells_programmed=2 * d * d),
                OperationCounts(inv_settles=1, dac_conversions=d, adc_conversions=d))
    d1 = split_point(d, size)
    d2 = d - d1
    setup_a, solve_a = inv_plan(d1, size)
    setup_s, solve_s = inv_plan(d2, size)
    setup = setup_a + setup_s + mvm_program(d1, d2, size) + mvm_program(d2, d1, size)
    for _ in range(d2):          # Y = A^-1 B column by column, then S = D - C Y
        setup = setup + solve_a + mvm_apply(d2, d1, size)
    setup.add(digital_flops=float(d2 * d2))
    solve = solve_a + solve_a + solve_s + mvm_apply(d2, d1, size) + mvm_apply(d1, d2, size)
    solve.add(digital_flops=float(d1 + d2))
    return setup, solve


def factor_counts(d: int, rhs_per_step: int, size: int, flow: Dataflow) -> tuple[OperationCounts, OperationCounts]:
    """(per inverse update, per step) counts of one factor of dimension d with ``rhs_per_step`` solves a step."""
    if d < 1 or rhs_per_step < 0 or size < 1:
        raise InputError(f"factor dimension {d}, right-hand sides {rhs_per_step}, array size {size}: must be positive")
    setup, solve = inv_plan(d, size)
    if flow.name in ("hpinv", "repast"):
        residual = mvm_apply(d, d, size, flow.slices)
        step = OperationCounts()
        for _ in range(flow.iterations):
            step = step + solve + residual
        step.add(digital_flops=float(flow.iterations * 2 * d))      # r = g - Hx, x += dx
        setup = setup + mvm_program(d, d, size, flow.slices)
        solve = step
    if flow.name == "repast":
        for _ in range(d):                                            # inverse column by column
            setup = setup + solve
        setup = setup + mvm_program(d, d, size, flow.inverse_slices)
        solve = mvm_apply(d, d, size, flow.inverse_slices)
    per_step = OperationCounts()
    per_step.add(**{k: v * rhs_per_step for k, v in solve.to_dict().items()})
    if flow.name in ("direct", "blockamc"):
        per_step.add(digital_flops=float(2 * d * rhs_per_step))     # equilibration: scale inputs and outputs
    return setup, per_step


def kfac_flops(layers: list[LayerFactors]) -> tuple[float, float]:
    """Digital K-FAC work: (flops per inverse update: an SPD inverse per factor, d^3 = Cholesky d^3/3 + inverse
    from the factor 2 d^3/3; flops per step: G^-1 dW A^-1 by two matmuls, 2 out in (in + out))."""
    inverse = sum(float(l.a_dim) ** 3 + float(l.g_dim) ** 3 for l in layers)
    step = sum(2.0 * l.g_dim * l.a_dim * (l.a_dim + l.g_dim) for l in layers)
    return inverse, step
