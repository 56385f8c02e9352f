"""Regenerate the example decks in netlists/examples/ (run from the repository root)."""
from pathlib import Path

import numpy as np

from amc import CircuitConfig, InvArray
from amc.hw.netlist import standalone

HERE = Path(__file__).resolve().parent
H4 = np.array([[2.0, -0.5, 0.2, 0.0], [-0.5, 1.5, -0.3, 0.1], [0.2, -0.3, 1.2, -0.4], [0.0, 0.1, -0.4, 1.0]])
G4 = np.array([1.0, -0.5, 0.25, 0.8])


def write(name: str, preset: str, h: np.ndarray, g: np.ndarray, transient: bool = False) -> None:
    array = InvArray(CircuitConfig.preset(preset)).program(h)
    deck = array.deck(g, transient=transient)
    deck = deck.replace("* amc-cosim closed-loop inversion (INV) circuit", f"* example: {name} (preset {preset})", 1)
    expected = " ".join(f"{v:.6g}" for v in np.linalg.solve(h, g))
    deck = deck.replace(".end\n", f"* expected x = H^-1 g = {expected}\n.end\n")
    (HERE / "examples" / f"{name}.cir").write_text(standalone(deck))


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 8))
    h8 = a @ a.T / 8 + 0.5 * np.eye(8)
    write("inv4_ideal_op", "ideal", H4, G4)
    write("inv8_rram_op", "rram", h8, rng.standard_normal(8))
    write("inv4_ideal_dynamic_tran", "ideal-dynamic", H4, G4, transient=True)
