"""`python -m amc.cli ARGS` = `amc ARGS`."""
import sys

from amc.cli import main

sys.exit(main())
