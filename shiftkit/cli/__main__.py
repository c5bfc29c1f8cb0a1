"""``python -m shiftkit.cli ...`` is the ``shiftkit`` command."""

import sys

from shiftkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
