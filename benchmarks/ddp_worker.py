"""One side of the DDP comparison: ``none`` vs ShiftMonitor every step, interleaved, in one launch.

Run by ``overhead.py`` as a subprocess, twice per workload: ``--world-size 1`` (one process) and
``--world-size 2`` (``strategy="ddp"`` on CPU, gloo; Lightning re-runs this script for rank 1),
both with ``--threads 1`` per process. Rank 0 writes ``--out`` (JSON: the timed blocks).
Not meant to be run by hand, though it can be::

    OMP_NUM_THREADS=1 python benchmarks/ddp_worker.py --workload mlp --world-size 2 --out /tmp/d.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import ensure_repo_on_path  # noqa: E402

ensure_repo_on_path()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True)
    p.add_argument("--world-size", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--toy", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import torch
    from timing import quiet_process

    quiet_process(args.threads)

    from configs import CONFIGS
    from timing import run_block
    from workloads import WORKLOADS, toy

    w = WORKLOADS[args.workload]
    if args.toy:
        w = toy(w)
    warmup = w.warmup if args.warmup is None else args.warmup
    blocks = []
    names = ("none", "shift_every")
    for r in range(args.rounds):
        for c in names[r % 2 :] + names[: r % 2]:  # alternate which goes first
            res, _, _ = run_block(
                w,
                c,
                CONFIGS[c].factory,
                round_index=r,
                warmup=warmup,
                timed=args.steps,
                log_every_n_steps=args.log_every,
                seed=args.seed + int(os.environ.get("LOCAL_RANK", "0")),
                world_size=args.world_size,
            )
            blocks.append(res.as_dict())
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        record = {
            "workload": args.workload,
            "world_size": args.world_size,
            "threads_per_process": torch.get_num_threads(),
            "blocks": blocks,
        }
        Path(args.out).write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
