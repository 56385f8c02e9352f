import numpy as np
import pytest


from workflow.matrices import random_spd  # noqa: E402  (one definition, shared with benchmarks)


@pytest.fixture
def spd():
    return random_spd
