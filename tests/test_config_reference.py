"""The generated reference of every config key is current and complete; unknown keys get a suggestion."""
import dataclasses
from pathlib import Path

import pytest

from amc import CircuitConfig, ConfigError, MethodSolver
from workflow.config_reference import reference

ROOT = Path(__file__).resolve().parents[1]


def test_committed_reference_is_generated_from_the_dataclasses():
    assert (ROOT / "docs" / "config-reference.md").read_text() == reference(), \
        "regenerate: python -m workflow.config_reference > docs/config-reference.md"


def test_every_key_has_a_row_with_a_meaning():
    from amc.config import SECTIONS
    from amc.methods.config import VARIANTS, MVMSection
    text = reference()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert all(not line.rstrip().endswith("|  |") for line in rows), [l for l in rows if l.endswith("|  |")]
    keys = {line.split("`")[1] for line in rows}
    for name, cls in SECTIONS.items():
        assert {f"{name}.{f.name}" for f in dataclasses.fields(cls)} <= keys
    for cls in VARIANTS.values():
        assert {f.name for f in dataclasses.fields(cls) if f.name != "mvm"} <= keys
    assert {f"mvm.{f.name}" for f in dataclasses.fields(MVMSection)} <= keys
    assert "| `device.g_min` | float | `5e-07` | S |" in text


@pytest.mark.parametrize("make, says", [
    (lambda: CircuitConfig.preset("rram").replace(**{"device.level": 16}), "did you mean 'levels'?"),
    (lambda: CircuitConfig.from_dict({"preset": "rram", "opamp": {"gian": 1e4}}), "did you mean 'gain'?"),
    (lambda: CircuitConfig.from_dict({"devise": {}}), "did you mean 'device'?"),
    (lambda: MethodSolver("rram", method="hpinv-pcg", iteration=3), "did you mean 'iterations'?"),
])
def test_unknown_keys_suggest_the_near_miss(make, says):
    with pytest.raises(ConfigError, match=says.replace("?", r"\?")):
        make()
