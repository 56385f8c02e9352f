import numpy as np
import pytest


from workflow.matrices import random_spd  # noqa: E402  (one definition, shared with benchmarks)


@pytest.fixture
def spd():
    return random_spd


@pytest.fixture(autouse=True)
def fresh_restamp_templates():
    """Every test starts as a fresh process would: no re-stamping template, no topology in fallback."""
    from amc.hw import restamp
    restamp.reset()
    yield
