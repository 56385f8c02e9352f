"""`amc characterise opamp FILE --name NAME --pins inp,inm,out,vcc,vee --supply V [--json]`."""
from __future__ import annotations

import argparse
import json

from amc.config import PIN_ROLES, OpAmpConfig
from amc.errors import ConfigError, InputError


def characterise_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="amc characterise",
                                     description="Measure an op-amp subcircuit in ngspice: DC gain, unity-gain "
                                                 "frequency, phase margin, output resistance, maximum output current, "
                                                 "slew rate, swing, quiescent current (each with how it was measured).")
    parser.add_argument("what", choices=["opamp"], help="what to characterise (an op-amp subcircuit)")
    parser.add_argument("file", help="the SPICE file holding the .subckt (its .model cards too)")
    parser.add_argument("--name", required=True, help="the subcircuit's name")
    parser.add_argument("--pins", default=",".join(PIN_ROLES),
                        help=f"the roles of the subcircuit's ports in order (default {','.join(PIN_ROLES)})")
    parser.add_argument("--supply", type=float, required=True, help="rails at +-SUPPLY volts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from amc.hw.characterise import characterise
    pins = [p.strip() for p in args.pins.split(",")]
    if not args.supply > 0:
        raise InputError(f"--supply must be a positive voltage, got {args.supply!r}")
    try:
        opamp = OpAmpConfig(name=args.name, model="subckt", subckt=args.file, pins=pins, supply_v=args.supply,
                            v_sat=None)
        opamp.validate("opamp")
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("opamp.pins", "--pins").replace("opamp.subckt", "FILE")) from None
    figures = characterise(opamp)
    if args.json:
        print(json.dumps(figures.to_dict()))
    else:
        print(figures.report())
    return 0
