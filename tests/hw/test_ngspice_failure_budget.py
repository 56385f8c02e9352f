"""Repeated ngspice parse and analysis failures in one process: libngspice keeps part of each failure's memory (in
proportion to the deck), so each failure is charged its deck's lines and a process stops using ngspice once the
charge reaches a budget (sweep workers are replaced at half of it). Memory stays bounded. Small decks failing
hundreds of times stay within it: tests/hw/test_circuit_io.py."""
import json
import subprocess
import sys
from pathlib import Path

from test_circuit_memory import RSS   # the one measuring preamble (rss_mb, numpy, session)

SCRIPT = RSS + r"""
import json
from amc import CircuitConfig, InvArray
from amc.errors import SimulationError
rng = np.random.default_rng(0)
a = rng.standard_normal((16, 16)); h = a @ a.T / 16 + np.eye(16)
deck = InvArray(CircuitConfig.preset('ideal')).program(h).deck(np.ones(16))
lines = deck.splitlines()
k = next(i for i, l in enumerate(lines) if l.startswith('rp_0_0 '))
lines[k] = 'rp_0_0 row_0 out_0 1k 2k 3k 4k'          # passes amc's checks, fails in ngspice's parser
unparsable = '\n'.join(lines) + '\n'
singular = '* two sources in a loop\nv1 1 0 1\nv2 1 0 2\nr1 1 0 1k\n.op\n.end\n'
s = session()
s.failure_budget = 30 * len(unparsable.splitlines())  # ~30 failed 16x16 parses (and the small analysis failures)
s.load(deck); s.run(['v(out_0)'], 'op')              # warm up the library
out = {'refused': 0, 'messages': set()}
rss = [rss_mb()]
for i in range(120):
    try:
        s.load(unparsable if i % 2 == 0 else singular)
        s.run(['v(1)'], 'op')
    except SimulationError as exc:
        text = str(exc).splitlines()[0]
        out['refused'] += 'budget' in text
        out['messages'].add(text[:60])
    rss.append(rss_mb())
out.update(failures=s.failures, lines=s.failed_lines, budget=s.failure_budget, deck_lines=len(deck.splitlines()),
           growth_to_budget=rss[70] - rss[0], growth_after=rss[-1] - rss[70], messages=sorted(out['messages']))
print(json.dumps(out))
"""


def test_failures_stop_at_the_budget_and_memory_stays_flat():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["deck_lines"] > 500                          # a 16x16 array deck
    # 30 parse failures of the 16x16 deck (and the 5-line analysis failures between them) spend the budget ...
    assert out["failures"] in (59, 60) and out["budget"] <= out["lines"] < out["budget"] + out["deck_lines"]
    assert out["refused"] == 120 - out["failures"]          # ... and every later attempt is refused before ngspice
    assert any("could not parse" in m for m in out["messages"])
    assert any("analysis failed" in m for m in out["messages"])
    # ~0.6-0.8 MB per failed 16x16 parse: bounded by the budget, and nothing more once it is spent
    assert out["growth_to_budget"] < 40, out
    assert abs(out["growth_after"]) < 2.0, out


def test_sweep_worker_is_replaced_at_half_the_budget():
    """run_point asks for a new worker once half the budget is spent; the engine removes the request from the record."""
    from amc.hw import runner
    from workflow.points import RECYCLE, run_point
    session = runner.session()
    saved = session.failed_lines
    try:
        payload = {"id": "p", "kind": "circuit", "params": {}, "timeout_s": 0,
                   "spec": {"circuit": {"preset": "ideal"}, "matrix": {"n": 3, "kind": "spd", "condition": 2},
                            "solve": {}}}
        assert RECYCLE not in run_point(payload)
        session.failed_lines = session.failure_budget // 2
        assert run_point(payload)[RECYCLE] is True
    finally:
        session.failed_lines = saved
