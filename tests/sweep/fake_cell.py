"""A stand-in for ``shiftkit fit`` in the sweep's device-slot tests (``runner.CELL_MODULE``).

It records what the runner gave the cell (its GPUs, threads and arguments, and when it ran),
holds its slot for ``HOLD_S`` seconds, and writes a result the runner accepts; a cell of the
variant ``broken`` fails at once, with exit status 3. It imports nothing heavy, so a fresh
interpreter (``--exec subprocess``) starts it in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

HOLD_S = 1.0
RECORD = "fake_cell.json"


def main(argv: list[str]) -> int:
    run_dir = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--run_dir=")))
    start = time.time()
    broken = "--variant=broken" in argv
    time.sleep(0.1 if broken else HOLD_S)
    record = {
        "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "argv": argv,
        "start": start,
        "end": time.time(),
    }
    (run_dir / RECORD).write_text(json.dumps(record), encoding="utf-8")
    if broken:
        print("RuntimeError: this cell is broken on purpose")
        return 3
    result = {"schema_version": 1, "config_hash": run_dir.name, "steps": 0}
    (run_dir / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
