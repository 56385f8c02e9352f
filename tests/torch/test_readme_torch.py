"""The README's AnalogKFAC example runs as written and prints the hand-counted account it states."""
import contextlib
import io
import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_analogkfac_example_runs_as_written():
    snippets = [s for s in re.findall(r"```python\n(.*?)```", README, re.S) if "AnalogKFAC" in s]
    assert len(snippets) == 1 and len(snippets[0].strip().splitlines()) <= 16
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippets[0], "README AnalogKFAC example", "exec"), {})
    programmings, settles, conversions, error, fallbacks = out.getvalue().split()
    # 4 factors; settles a step 4 + 10 + 3 + 17 = 34; conversions 2 x (4*10 + 10*4 + 3*17 + 17*3) = 364 a step
    assert (int(programmings), int(settles), int(conversions), int(fallbacks)) == (4, 3 * 34, 3 * 364, 0)
    assert 0.0 < float(error) < 0.3
    assert f"It prints `{out.getvalue().strip()}`" in README
