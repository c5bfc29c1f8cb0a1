"""The cost of one measurement in two checkouts of shiftkit, side by side in one run.

    python benchmarks/ab_checkouts.py --old /path/to/old/checkout --new . --out benchmarks/results/ab.md

Each checkout's ``shiftkit`` is imported in its own subprocess (``PYTHONPATH`` set to the
checkout), alternating old and new round by round, so both see the same machine state. A worker
trains the benchmark's workload (``workloads.py``: the same models, batches and seeds) in a plain
loop with a :class:`~shiftkit.ShiftTracker` measuring every step, one thread, and times bare steps
and measured steps alternately; the added time of a measured step is the difference of their
medians. No Lightning: this isolates shiftkit's own work (the Trainer adds its per-step cost to
both and makes the numbers noisier). Reported: the added milliseconds per measured step of each
checkout in every round, their medians and the ratio old/new. The old checkout must have
``ShiftTracker`` (shiftkit >= issue 10).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(workload: str, steps: int) -> dict:
    """Runs in the subprocess: bare and measured steps, alternating; medians in ms."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from workloads import WORKLOADS

    from shiftkit import ShiftTracker

    w = WORKLOADS[workload]
    torch.manual_seed(0)
    net = w.module()
    opt = torch.optim.SGD(net.parameters(), lr=w.lr)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(w.batch_size, *w.input_shape, generator=g)
    y = torch.randint(0, 10, (w.batch_size,), generator=g)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    tracker = ShiftTracker(net, every_n_steps=1, log_fn=lambda metrics, s: None)
    bare, measured = [], []
    for i in range(steps + 3):  # the first three pairs warm up (discovery, buffers)
        t = time.perf_counter()
        step()
        t_bare = time.perf_counter() - t
        t = time.perf_counter()
        with tracker.step():
            step()
        t_measured = time.perf_counter() - t
        if i >= 3:
            bare.append(t_bare)
            measured.append(t_measured)
    tracker.close()
    med_bare, med_measured = statistics.median(bare) * 1e3, statistics.median(measured) * 1e3
    return {"bare_ms": med_bare, "measured_ms": med_measured, "added_ms": med_measured - med_bare}


def run_worker(src: Path, workload: str, steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", workload, "--steps", str(steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=src)
    if out.returncode != 0:
        raise SystemExit(f"ab_checkouts: the worker for {src} ({workload}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def commit_of(src: Path) -> str:
    out = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python benchmarks/ab_checkouts.py", description=__doc__.split("\n")[0])
    p.add_argument("--old", type=Path, help="checkout whose shiftkit is the baseline")
    p.add_argument("--new", type=Path, default=HERE.parent, help="checkout to compare (default: this one)")
    p.add_argument("--workloads", default="mlp,deep,cnn", help="comma list of mlp, cnn, deep")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="measured steps per worker (default per workload)")
    p.add_argument("--out", type=Path, default=None, help="Markdown file to write (default: print only)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)))
        return
    if args.old is None:
        p.error("--old is required")
    default_steps = {"mlp": 200, "deep": 60, "cnn": 4}
    rows, lines = [], []
    started = time.time()
    for name in [w.strip() for w in args.workloads.split(",") if w.strip()]:
        steps = args.steps or default_steps.get(name, 20)
        added = {"old": [], "new": []}
        for r in range(args.rounds):
            for side in ("old", "new"):
                res = run_worker(getattr(args, side).resolve(), name, steps)
                added[side].append(res["added_ms"])
                print(f"[{name} round {r + 1}/{args.rounds}] {side}: bare {res['bare_ms']:.2f} ms, "
                      f"added {res['added_ms']:.2f} ms", flush=True)  # fmt: skip
        old, new = statistics.median(added["old"]), statistics.median(added["new"])
        rows.append((name, steps, added, old, new))
    lines += [
        "# One measurement, two checkouts",
        "",
        f"Generated by `python benchmarks/ab_checkouts.py --old <{commit_of(args.old)}> --new <{commit_of(args.new)}> "
        f"--rounds {args.rounds}` ({time.time() - started:.0f} s). Plain training loop, one thread, a "
        "`ShiftTracker` measuring every step; added = median measured step minus median bare step "
        "(alternating), per round; old and new alternate round by round.",
        "",
        f"| workload | steps per worker | old `{commit_of(args.old)}`: added ms per round | new `{commit_of(args.new)}`: "
        "added ms per round | old median | new median | old / new |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, steps, added, old, new in rows:
        fmt = lambda v: ", ".join(f"{x:.2f}" for x in v)  # noqa: E731
        lines.append(f"| {name} | {steps} | {fmt(added['old'])} | {fmt(added['new'])} | {old:.2f} | {new:.2f} | "
                     f"**{old / new:.2f}x** |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
