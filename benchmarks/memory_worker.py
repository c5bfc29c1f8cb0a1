"""One long run of the memory section, in a fresh process, so that its RSS is its own.

In a process that has already trained other configurations, freed-but-resident heap memory would
absorb a leak (or the history's growth) and hide it; a fresh process starts from the imports
alone. Run by ``overhead.py``; writes ``--out`` (JSON: RSS samples and the history's size).

    python benchmarks/memory_worker.py --run flat --steps 5000 --every 250 --out /tmp/m.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import ensure_repo_on_path  # noqa: E402

ensure_repo_on_path()

RUNS = {
    "none": "no monitor (control)",
    "flat": "ShiftMonitor(every_n_steps=1, keep_history=False)",
    "history": "ShiftMonitor(every_n_steps=1, keep_history=True)",
}


def history_bytes(rows: list[dict]) -> int:
    """Bytes held by a monitor's ``history``: the list, each row dict and its value objects.

    Keys (interned strings shared by all rows) and the site names (shared) are not counted.
    """
    total = sys.getsizeof(rows)
    for row in rows:
        total += sys.getsizeof(row)
        total += sum(sys.getsizeof(v) for k, v in row.items() if k != "site")
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, choices=sorted(RUNS))
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--every", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--toy", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    from timing import quiet_process

    quiet_process(args.threads)

    from timing import run_block
    from workloads import WORKLOADS, toy

    from shiftkit import ShiftMonitor

    w = toy(WORKLOADS["mlp"]) if args.toy else WORKLOADS["mlp"]

    def factory(tmpdir: str) -> list:
        if args.run == "none":
            return []
        return [ShiftMonitor(every_n_steps=1, keep_history=args.run == "history")]

    res, timer, cbs = run_block(
        w,
        args.run,
        factory,
        round_index=0,
        warmup=0,
        timed=args.steps - 1,
        log_every_n_steps=50,
        device=args.device,
        seed=args.seed,
        rss_every=args.every,
    )
    record = {
        "key": args.run,
        "label": RUNS[args.run],
        "steps": args.steps,
        "samples": timer.rss_samples,
        "median_step_ms": sorted(res.seconds)[len(res.seconds) // 2] * 1e3 if res.seconds else None,
        "wall_s": res.wall_s,
    }
    if args.run != "none":
        mon = cbs[0]
        record["sites"] = len(mon.site_names)
        record["measurements"] = mon.measurements
        record["history_rows"] = len(mon.history)
        record["history_bytes"] = history_bytes(mon.history)
    Path(args.out).write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
