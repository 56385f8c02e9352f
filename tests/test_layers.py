"""Data flows one way (docs/DESIGN.md sec. 4): amc/ imports neither training/ nor workflow/; training/ does not
import workflow/ (a study on the sweep engine is workflow's)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_packages(path: Path) -> set:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package,forbidden", [("amc", {"training", "workflow"}), ("training", {"workflow"})])
def test_lower_layers_do_not_import_higher_ones(package, forbidden):
    offenders = {str(p.relative_to(ROOT)): sorted(imported_packages(p) & forbidden)
                 for p in sorted((ROOT / package).rglob("*.py")) if imported_packages(p) & forbidden}
    assert not offenders, offenders
