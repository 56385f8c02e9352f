"""The `amc` command lives in amc/cli/ (entry point ``amc.cli:main``); this alias keeps a console script installed
before it moved working until the next `make install` rewrites it."""
from amc.cli import main

__all__ = ["main"]
