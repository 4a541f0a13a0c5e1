"""`python -m prefixlab.report ARGS`: the same as `prefixlab report ARGS`."""

import sys

from prefixlab.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
