"""What was done to the hardware: one counter per programmed array, summed by every method and by training.

The cost ledger prices these counts; the training log reports them. A count is an operation the notional
hardware performs (a settle, a read, a conversion), never a simulator artefact -- except ``ngspice_runs``, which
counts real simulator invocations so a reader can tell measured from modelled.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields


def exact_solve_flops(n: int, k: int) -> float:
    """Digital work of one exact solve: LU factorisation and k pairs of triangular solves (LAPACK gesv)."""
    return 2 * n ** 3 / 3 + 2 * n * n * k


@dataclass
class OperationCounts:
    programmings: int = 0        # array programming events (an INV differential pair, one MVM slice/tile pair)
    cells_programmed: int = 0    # RRAM cells written (both halves of a differential pair)
    inv_settles: int = 0         # INV settles: one per right-hand-side column
    mvm_reads: int = 0           # MVM reads: one input vector applied to one array
    dac_conversions: int = 0     # input conversions (one per driven row per settle/read)
    adc_conversions: int = 0     # output conversions (one per sensed output per settle/read)
    ngspice_runs: int = 0        # real simulator invocations (.op, .tran, batch transient, matrix factorisation)
    digital_flops: float = 0.0   # arithmetic done outside the arrays (refinement, scaling, matmuls, fallbacks)
    # How each simulated programming's operator was obtained (simulator artefacts like ngspice_runs): by a real
    # ngspice .op of the programmed deck, or by re-stamping the topology's exported matrix (amc/hw/restamp.py).
    # A write the controller refuses before any read (shift: auto) is neither.
    programmings_verified: int = 0
    programmings_restamped: int = 0
    # Pulsed weight updates (amc/tiles): parallel update cycles (one pulse train each), programming pulses that
    # reached a cell (coincidences), and pulses the row/column drivers emitted.
    update_cycles: int = 0
    cell_pulses: int = 0
    driver_pulses: int = 0

    def __add__(self, other: "OperationCounts") -> "OperationCounts":
        return OperationCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: "OperationCounts") -> "OperationCounts":
        return OperationCounts(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def add(self, **counts) -> None:
        for name, value in counts.items():
            if not hasattr(self, name):
                raise KeyError(f"unknown operation count {name!r}")
            setattr(self, name, getattr(self, name) + value)

    def copy(self) -> "OperationCounts":
        return OperationCounts(**asdict(self))

    @property
    def conversions(self) -> int:
        return self.dac_conversions + self.adc_conversions

    def to_dict(self) -> dict:
        d = asdict(self)
        d["digital_flops"] = float(d["digital_flops"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "OperationCounts":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names - {"conversions"})
        if unknown:
            raise KeyError(f"unknown operation count(s) {', '.join(unknown)}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def __repr__(self) -> str:
        return (f"OperationCounts({self.programmings} programmings / {self.cells_programmed} cells, "
                f"{self.inv_settles} INV settles, {self.mvm_reads} MVM reads, {self.conversions} conversions, "
                f"{self.ngspice_runs} ngspice runs ({self.programmings_verified} programmings verified by ngspice, "
                f"{self.programmings_restamped} re-stamped), {self.digital_flops:.3g} digital flops)")
