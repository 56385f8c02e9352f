"""x from what `ngspice -b` printed for a deck amc wrote (the command: `amc readback`, amc/cli/circuit.py).

The deck's header holds the mapping (G0, I0, max|g|, the equilibration d); the output holds the op-amp outputs,
either as the control block's ``v(out_j) = value`` lines or as ngspice's full operating-point listing
(``out_j  value``). x_j = -V(out_j) * G0 / I0 * max|g| * d_j.
"""
from __future__ import annotations

import re

import numpy as np

from amc.errors import InputError
from amc.hw.netlist import parse_header

_PRINTED = re.compile(r"^\s*v\(out_(\d+)\)\s*=\s*(\S+)\s*$", re.M)
_LISTED = re.compile(r"^\s*out_(\d+)\s+([-+0-9.eE]+)\s*$", re.M)


def readback(deck: str, output: str) -> np.ndarray:
    try:
        header = parse_header(deck)
    except ValueError as exc:
        raise InputError(f"the deck: {exc} (readback reads decks written by amc netlist / make sim)") from None
    if header["g_scale"] is None:
        raise InputError("the deck's header does not record max|g| (a solver-internal deck): x cannot be recovered")
    if "\n.tran" in deck or re.search(r"^\.tran", deck, re.M):
        raise InputError("readback reads an operating point; this is a transient deck (its .print table is the "
                         "waveform)")
    n = header["n"]
    volts = {int(j): float(v) for j, v in _PRINTED.findall(output)} or \
        {int(j): float(v) for j, v in _LISTED.findall(output)}
    missing = [j for j in range(n) if j not in volts]
    if missing:
        raise InputError(f"the ngspice output holds no value for out_{missing[0]} ({len(missing)} of {n} outputs "
                         "missing): is it the output of `ngspice -b` on this deck?")
    v = np.array([volts[j] for j in range(n)])
    d = np.asarray(header["d"]) if header["d"] else np.ones(n)
    return -v * header["g0"] / header["i0"] * header["g_scale"] * d
