"""``python -m shiftkit ...`` is the ``shiftkit`` command (:mod:`shiftkit.command`)."""

import sys

from shiftkit.command import main

if __name__ == "__main__":
    sys.exit(main())
