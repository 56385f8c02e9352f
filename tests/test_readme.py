"""The README's Python snippets run as written, and it points nowhere outside the repository."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _snippets():
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_snippets_and_no_outside_pointers():
    assert len(_snippets()) >= 2
    assert "../" not in README and not re.search(r"\bissue\s+#?\d", README, re.I)
    assert "notebooks/" in README and "run_sweep" in README and "train(" in README


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_readme_snippet_runs_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets write under results/
    namespace: dict = {}
    exec(compile(_snippets()[index], f"README.md snippet {index}", "exec"), namespace)
    if index == 0:
        assert namespace["sol"].x.shape == (8,) and namespace["cfg"].name.startswith("rram (modified")
    else:
        assert namespace["report"].ok == 3 and (tmp_path / "results" / "train" / "demo" / "metrics.jsonl").exists()
