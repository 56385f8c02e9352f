"""An equal-technology digital K-FAC engine: the same node's arithmetic, register-file and SRAM figures as the
analog side's periphery, doing the K-FAC work digitally (the comparison a hardware reviewer asks for first).

Source node: Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V (his
energy/area table; the same paper the analog ledger's digital remainder cites):

    operation        energy (pJ)  area (um^2)        operation        energy (pJ)  area (um^2)
    8b int add       0.03         36                 8b int mult      0.2          282
    32b int add      0.1          137                32b int mult     3.1          3495
    16b FP add       0.4          1360               16b FP mult      1.1          1640
    32b FP add       0.9          4184               32b FP mult      3.7          7700
    32b SRAM read (8 KB)  5 pJ

Scaled to the analog array's node (the 40-nm TaOx chips of Zuo et al. 2025, the 40-nm SAR ADC of presets.SAR_ADC):
ASSUMPTION, first-order scaling at an unchanged supply: switched capacitance and so energy proportional to the
feature size (x 40/45), area to its square (x (40/45)^2).

What the engine does per factor of dimension d (kfac-pytorch's habit, and the flops of workloads.kfac_flops):
- every ``inverse_every`` steps: SPD inverse by Cholesky (d^3/3 flops) and inverse from the factor (2 d^3/3);
- every step: G^-1 dW A^-1 by two matrix products, 2 out in (in + out) flops.
A multiply-accumulate (MAC) is 2 flops: one multiply and one add. Precisions: FP32, FP16/BF16 (BF16 priced as FP16:
Horowitz gives no BF16 figure and a BF16 multiplier is smaller, so this errs against digital by a little) and INT8
(8-bit multiply, 32-bit accumulate): INT8 is the lower bound of what matches an 8-to-16-level analog answer; a
Cholesky in INT8 is not a practical algorithm (square roots and divisions), so read it as a floor, not a design.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from amc.errors import InputError

SOURCE_NODE_NM = 45.0
TARGET_NODE_NM = 40.0


@dataclass(frozen=True)
class Precision:
    """One MAC's multiplier and accumulator at the source node (Horowitz 2014)."""

    name: str
    bits: int              # operand width (SRAM/RF words)
    mult_pj: float
    add_pj: float
    mult_um2: float
    add_um2: float


PRECISIONS = {
    "fp32": Precision("fp32", 32, 3.7, 0.9, 7700.0, 4184.0),
    "fp16": Precision("fp16", 16, 1.1, 0.4, 1640.0, 1360.0),
    "bf16": Precision("bf16", 16, 1.1, 0.4, 1640.0, 1360.0),
    "int8": Precision("int8", 8, 0.2, 0.1, 282.0, 137.0),     # 8b multiply, 32b accumulate
}

# Horowitz 2014: a 32-bit read of an 8 KB SRAM costs 5 pJ; ASSUMPTION: a write costs the same, and a narrower word
# costs proportionally less (bit lines switched).
SRAM_PJ_PER_32B = 5.0
# Chen, Emer, Sze, "Eyeriss: a spatial architecture for energy-efficient dataflow for CNNs", ISCA 2016 (65 nm,
# normalised energies): a register-file access costs about as much as the MAC itself (RF 1x, ALU 1x, NoC 2x, global
# buffer 6x, DRAM 200x). ASSUMPTION: one RF access per MAC (the streamed operand; the stationary operand and the
# partial sum sit in the PE's pipeline registers, as in Eyeriss's row-stationary dataflow): digital at its best.
RF_ACCESS_PER_MAC = 1.0
# Mistry et al., "A 45nm logic technology with high-k+metal gate transistors...", IEDM 2007: 6T SRAM cell 0.346 um^2.
# ASSUMPTION: 70 % array efficiency (sense amplifiers, decoders); the register file of each MAC unit, 32 words,
# at 4x the SRAM cell area per bit (multi-ported flip-flop cells).
SRAM_CELL_UM2 = 0.346
SRAM_ARRAY_EFFICIENCY = 0.7
RF_WORDS_PER_UNIT = 32
RF_CELL_FACTOR = 4.0
# ASSUMPTION: a Cholesky column step waits for one square root and one division: 20 cycles of dependent latency per
# column (pipelined FP sqrt/div units take ~10-20 cycles), twice over d columns (factor, then inverse).
DEPENDENT_CYCLES_PER_COLUMN = 20


@dataclass(frozen=True)
class EngineCost:
    """Time, energy (split: arithmetic, register file, SRAM; sums to energy_j) and area of digital work."""

    time_s: float
    energy_j: float
    area_mm2: float
    breakdown: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"time_s": self.time_s, "energy_j": self.energy_j, "area_mm2": self.area_mm2,
                "breakdown": dict(self.breakdown), **self.detail}


@dataclass(frozen=True)
class DigitalNode:
    """The equal-technology engine: ``units`` MAC units at ``clock_hz`` on the target node, at one precision."""

    precision: str = "fp32"
    # Default throughput: the digital periphery the analog ledger already places beside its arrays
    # (presets.DigitalModel: one FMA unit per array column at 500 MHz); the CLI gives the engine as many units as the
    # analog step has array columns, so both sides use the same silicon budget for arithmetic.
    units: int = 110
    clock_hz: float = 500e6
    node_nm: float = TARGET_NODE_NM

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        if not isinstance(self.units, int) or self.units < 1:
            raise InputError(f"engine units must be a positive integer, got {self.units!r}")
        for key in ("clock_hz", "node_nm"):
            if not getattr(self, key) > 0:
                raise InputError(f"engine {key} must be positive, got {getattr(self, key)!r}")

    @property
    def _p(self) -> Precision:
        return PRECISIONS[self.precision]

    @property
    def energy_scale(self) -> float:
        return self.node_nm / SOURCE_NODE_NM

    @property
    def area_scale(self) -> float:
        return (self.node_nm / SOURCE_NODE_NM) ** 2

    @property
    def mac_j(self) -> float:
        return (self._p.mult_pj + self._p.add_pj) * 1e-12 * self.energy_scale

    @property
    def rf_j_per_mac(self) -> float:
        return RF_ACCESS_PER_MAC * self.mac_j

    @property
    def sram_j_per_word(self) -> float:
        return SRAM_PJ_PER_32B * 1e-12 * self._p.bits / 32 * self.energy_scale

    def area_mm2(self, sram_words: float) -> float:
        """MAC units with their register files, and an SRAM holding ``sram_words`` words."""
        p = self._p
        cell = SRAM_CELL_UM2 * self.area_scale
        unit = (p.mult_um2 + p.add_um2) * self.area_scale + RF_WORDS_PER_UNIT * p.bits * cell * RF_CELL_FACTOR
        sram = sram_words * p.bits * cell / SRAM_ARRAY_EFFICIENCY
        return (self.units * unit + sram) * 1e-6

    def describe(self) -> str:
        return (f"equal-technology digital engine: {self.units} {self.precision.upper()} MAC units at "
                f"{self.clock_hz / 1e6:g} MHz, {self.node_nm:g} nm (Horowitz 2014 45-nm figures scaled), "
                f"{self.mac_j * 1e12:.3g} pJ/MAC + {self.rf_j_per_mac * 1e12:.3g} pJ RF, "
                f"{self.sram_j_per_word * 1e12:.3g} pJ per SRAM word")


def kfac_engine_counts(dims: list[tuple[int, int]], inverse_every: int) -> dict:
    """MACs and SRAM words of the K-FAC work per step (inverse update amortised), for layers given as (a_dim, g_dim).

    Inverse of a d x d factor: d^3/2 MACs (d^3 flops), SRAM traffic 3 d^2 words (read the factor, write and read the
    Cholesky factor's triangle, write the inverse). Apply G^-1 dW A^-1 (a, g): g a (a + g) MACs, traffic
    a^2 + g^2 + 4 g a words (both inverses and dW read, the intermediate written and read, the result written)."""
    if not isinstance(inverse_every, int) or inverse_every < 1:
        raise InputError(f"inverse_every must be a positive integer, got {inverse_every!r}")
    inv_macs = sum(0.5 * (float(a) ** 3 + float(g) ** 3) for a, g in dims)
    inv_words = sum(3.0 * (a * a + g * g) for a, g in dims)
    app_macs = sum(float(g) * a * (a + g) for a, g in dims)
    app_words = sum(float(a * a + g * g + 4 * g * a) for a, g in dims)
    return {"inverse_macs": inv_macs, "inverse_words": inv_words, "apply_macs": app_macs, "apply_words": app_words,
            "macs_per_step": app_macs + inv_macs / inverse_every,
            "sram_words_per_step": app_words + inv_words / inverse_every,
            "largest_factor": max(max(a, g) for a, g in dims),
            # resident: factors, their inverses and dW of every layer
            "resident_words": sum(2.0 * (a * a + g * g) + g * a for a, g in dims)}


def kfac_engine_cost(dims: list[tuple[int, int]], inverse_every: int, node: DigitalNode = DigitalNode()) -> EngineCost:
    """Per training step: energy from the MAC, RF and SRAM counts; time = the inverse update (work over the units,
    or the Cholesky dependency chain of the largest factor, whichever is longer) amortised, plus the products."""
    if not dims:
        raise InputError("no layers: nothing to cost")
    c = kfac_engine_counts(dims, inverse_every)
    arithmetic = c["macs_per_step"] * node.mac_j
    rf = c["macs_per_step"] * node.rf_j_per_mac
    sram = c["sram_words_per_step"] * node.sram_j_per_word
    rate = node.units * node.clock_hz
    chain = 2 * c["largest_factor"] * DEPENDENT_CYCLES_PER_COLUMN / node.clock_hz
    t_inverse = max(c["inverse_macs"] / rate, chain)
    t_apply = c["apply_macs"] / rate
    time = t_apply + t_inverse / inverse_every
    area = node.area_mm2(c["resident_words"])
    breakdown = {"arithmetic": arithmetic, "register file": rf, "SRAM": sram}
    return EngineCost(time_s=time, energy_j=sum(breakdown.values()), area_mm2=area, breakdown=breakdown,
                      detail={"precision": node.precision, "units": node.units, "clock_hz": node.clock_hz,
                              "node_nm": node.node_nm, "flops_per_step": 2 * c["macs_per_step"],
                              "inverse_update_s": t_inverse, "apply_s": t_apply,
                              "tops_per_mm2": 2 * c["macs_per_step"] / time / 1e12 / area if area else math.nan})


def solve_engine_cost(n: int, node: DigitalNode = DigitalNode()) -> EngineCost:
    """One dense n x n solve on the engine (LU: n^3/3 MACs and 2/3 n^3 flops, two triangular solves n^2 MACs; SRAM
    traffic 3 n^2 words as for an inverse): the equal-technology side of HP-INV's one-solve comparison."""
    if not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    macs = n ** 3 / 3.0 + n * n
    words = 3.0 * n * n
    breakdown = {"arithmetic": macs * node.mac_j, "register file": macs * node.rf_j_per_mac,
                 "SRAM": words * node.sram_j_per_word}
    chain = 2 * n * DEPENDENT_CYCLES_PER_COLUMN / node.clock_hz
    time = max(macs / (node.units * node.clock_hz), chain)
    return EngineCost(time_s=time, energy_j=sum(breakdown.values()), area_mm2=node.area_mm2(n * n + 2 * n),
                      breakdown=breakdown, detail={"precision": node.precision, "units": node.units, "macs": macs})
