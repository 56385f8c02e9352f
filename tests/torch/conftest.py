import pytest

torch = pytest.importorskip("torch", reason="torch==2.13.0 is installed by `make install` (the torch extra)")

from amc.blas import limit_blas_threads  # noqa: E402

# Small matrices on a shared 2-core machine: more threads only contend (see amc/blas.py).
torch.set_num_threads(1)
limit_blas_threads(1)
