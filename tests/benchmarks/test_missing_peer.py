"""A selected benchmark peer that is not installed stops the run before any work, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_missing_peer_names_the_extra(tmp_path):
    code = ("import sys, runpy; sys.modules['torchinstruments'] = None; sys.path.insert(0, 'benchmarks'); "
            f"sys.argv = ['overhead.py', '--toy', '--configs', 'torchinstruments_1', '--out', {str(tmp_path)!r}]; "
            "runpy.run_path('benchmarks/overhead.py', run_name='__main__')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "the overhead benchmark's real peers needs the 'bench' extra (torchinstruments not installed): "
        "pip install 'shiftkit[bench]'"
    ]
    assert not any(tmp_path.iterdir())  # nothing measured, nothing written
