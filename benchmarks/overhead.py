"""Overhead of ShiftMonitor on the training hot path, side by side with the tools people use today.

Run from the repository root::

    python benchmarks/overhead.py                # full run (<= 30 min on 2 quiet cores)
    python benchmarks/overhead.py --quick        # about 3 minutes
    python benchmarks/overhead.py --workloads mlp --configs shift_default,shift_every
    python benchmarks/overhead.py --profile shift_every --workloads deep

Writes ``overhead.md``, ``overhead.json`` and PNG figures to ``--out`` (default
``benchmarks/results``). It reports whether the overhead targets are met; it never fails on them.
How the timing is done and how to read the table: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import ensure_repo_on_path  # noqa: E402

ensure_repo_on_path()

SECTIONS = ("timing", "ddp", "memory", "scaling")


# ----------------------------------------------------------------------------- arguments
PEER_MODULES = {"torchinstruments": "torchinstruments", "nvdlfw_inspect": "nvdlfw_inspect", "wandb": "wandb"}
"""The real peers a configuration name starts with, and the module it needs (``shiftkit[bench]``)."""


def _require_peers(configs: list[str]) -> None:
    """Stop before any work, in one line, when a selected peer is not installed."""
    from shiftkit.extras import MissingExtraError, require

    needed = tuple(dict.fromkeys(m for c in configs for prefix, m in PEER_MODULES.items() if c.startswith(prefix)))
    try:
        if needed:
            require("bench", "the overhead benchmark's real peers", needed)
    except MissingExtraError as err:
        raise SystemExit(str(err)) from None


def parse_args(argv=None) -> argparse.Namespace:
    from configs import CONFIGS
    from workloads import WORKLOADS

    p = argparse.ArgumentParser(
        prog="python benchmarks/overhead.py",
        description="Step-time overhead of ShiftMonitor vs no monitor and vs fastai/wandb/Bolts-style monitors.",
    )
    p.add_argument("--quick", action="store_true", help="fewer rounds and steps (about 3 minutes)")
    p.add_argument(
        "--toy",
        action="store_true",
        help="tiny models and 1 round: checks the pipeline (smoke test), numbers meaningless",
    )
    p.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}"
    )
    p.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma list of {', '.join(CONFIGS)} ('none' is always added)",
    )
    p.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    p.add_argument(
        "--out", default=str(HERE / "results"), help="output folder (default benchmarks/results)"
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: all usable cores)",
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="override the interleaved rounds per workload"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="override the timed steps per every-step block"
    )
    p.add_argument(
        "--time-cap",
        type=float,
        default=None,
        help="seconds after which an every-step block stops early (>= 3 timed steps)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--memory-steps",
        type=int,
        default=None,
        help="steps of the memory runs (default 5000; quick 1000); sampling scales with it",
    )
    p.add_argument(
        "--profile",
        metavar="CONFIG",
        default=None,
        help="profile CONFIG on the first workload with torch.profiler and cProfile, print the top ops, and exit",
    )
    p.add_argument("--profile-steps", type=int, default=10)
    p.add_argument(
        "--rerender",
        metavar="JSON",
        default=None,
        help="measure nothing: recompute the summaries from a previous overhead.json's blocks "
        "and rewrite the Markdown, JSON and figures in --out",
    )
    args = p.parse_args(argv)
    args.workloads = _split(args.workloads, WORKLOADS, "workload")
    configs = _split(args.configs, CONFIGS, "config")
    args.configs = ["none"] + [c for c in configs if c != "none"]
    _require_peers(args.configs)
    args.sections = _split(args.sections, SECTIONS, "section")
    if args.profile is not None and args.profile not in CONFIGS:
        p.error(f"--profile: unknown config {args.profile!r}; choose from {', '.join(CONFIGS)}")
    if args.threads is None:
        args.threads = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        )
    args.mode = "toy" if args.toy else "quick" if args.quick else "full"
    return args


def _split(value: str, allowed, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}(s) {bad}; choose from {', '.join(allowed)}")
    return items


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- plan
def workload_for(name: str, mode: str):
    from workloads import WORKLOADS, toy

    w = WORKLOADS[name]
    return toy(w) if mode == "toy" else w


def plan_for(w, args) -> dict:
    from configs import CONFIGS

    quick = args.mode != "full"
    log_every = 50
    note = ""
    if args.mode == "quick" and w.name == "cnn":
        log_every = 10
        note = (
            "--quick: log_every_n_steps=10 for the CNN, so ShiftMonitor() defaults measure every 10 "
            "steps (5x the full run's 50: an upper bound on its amortized cost)."
        )
    if args.mode == "toy":
        log_every = 2
    timed_every = args.steps or (w.quick_steps if quick else w.steps)
    rounds = args.rounds or (w.quick_rounds if quick else w.rounds)
    periods = {c: CONFIGS[c].period_steps(log_every) for c in args.configs}
    timed = {
        c: (timed_every if p == 1 else math.ceil(max(timed_every, p) / p) * p)
        for c, p in periods.items()
    }
    timed["none"] = max(timed.values())
    if w.name == "cnn" and args.mode != "toy" and args.device == "cpu":
        note = (note + " " if note else "") + (
            "One ResNet-20 step at batch 128 takes about a second or more on this CPU: "
            f"architecture and batch kept, fewer timed steps ({timed_every} per block)."
        )
    cap = args.time_cap if args.time_cap is not None else (10.0 if quick else 30.0)
    return dict(
        rounds=rounds,
        warmup=w.warmup,
        timed_every=timed_every,
        timed=timed,
        timed_periodic={c: n for c, n in timed.items() if periods[c] > 1} or "none selected",
        periods=periods,
        log_every_n_steps=log_every,
        time_cap_s=cap,
        note=note,
    )


def count_sites(w) -> int:
    from lightning.pytorch import seed_everything

    from shiftkit.tracker.selection import select_modules

    seed_everything(0, verbose=False)
    return len(select_modules(w.module(), None, None))


# ----------------------------------------------------------------------------- sections
def run_workload(w, args) -> dict:
    from configs import CONFIGS
    from report import summarize_timing
    from timing import run_block

    plan = plan_for(w, args)
    plan["sites"] = count_sites(w)
    blocks = []
    configs = list(args.configs)
    for r in range(plan["rounds"]):
        k = r % len(configs)
        for c in configs[k:] + configs[:k]:  # rotate the order each round
            periodic = plan["periods"][c] > 1 or c == "none"
            res, _, _ = run_block(
                w,
                c,
                CONFIGS[c].factory,
                round_index=r,
                warmup=plan["warmup"],
                timed=plan["timed"][c],
                log_every_n_steps=plan["log_every_n_steps"],
                device=args.device,
                seed=args.seed,
                time_cap_s=None if periodic else plan["time_cap_s"],
            )
            blocks.append(res.as_dict())
            med = sorted(res.seconds)[len(res.seconds) // 2] * 1e3 if res.seconds else float("nan")
            log(
                f"[{w.name} round {r + 1}/{plan['rounds']}] {c:15s} {len(res.seconds):4d} steps, "
                f"median {med:9.2f} ms, block {res.wall_s:6.1f} s{' (capped)' if res.capped else ''}"
            )
    out = {"workload": w.describe(), "plan": plan, "blocks": blocks}
    summarize_timing(out)
    if BREAKDOWN_CONFIG in configs:
        out["breakdown"] = run_breakdown(w, plan, args)
    return out


#: The configuration whose measurement is split into phases (one measurement every step).
BREAKDOWN_CONFIG = "shift_every"


def run_breakdown(w, plan: dict, args) -> dict:
    """One extra, untimed block of ShiftMonitor every step with :class:`breakdown.PhaseTimer`
    installed: milliseconds per measurement in each phase (kept out of the ratios above, since
    the wrappers add their own few microseconds per call)."""
    from breakdown import PhaseTimer
    from configs import CONFIGS
    from lightning.pytorch import Callback
    from timing import run_block

    timer = PhaseTimer()

    class ResetAfterWarmup(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == plan["warmup"]:
                timer.reset()

    with timer.installed():
        res, _, _ = run_block(
            w,
            BREAKDOWN_CONFIG,
            CONFIGS[BREAKDOWN_CONFIG].factory,
            round_index=-1,
            warmup=plan["warmup"],
            timed=plan["timed"][BREAKDOWN_CONFIG],
            log_every_n_steps=plan["log_every_n_steps"],
            device=args.device,
            seed=args.seed,
            time_cap_s=plan["time_cap_s"],
            extra_callbacks=[ResetAfterWarmup()],
        )
    out = timer.per_measurement()
    out["config"] = BREAKDOWN_CONFIG
    out["timed_steps"] = len(res.seconds)
    log(
        f"[{w.name} breakdown] {out['measurements']} measurements, "
        + ", ".join(f"{p} {v:.3f}" for p, v in out["ms_per_measurement"].items() if v is not None)
        + " ms each"
    )
    return out


def run_ddp(args) -> dict:
    """Per workload (mlp, cnn): one 1-process and one 2-process launch of ddp_worker.py."""
    from report import summarize_ddp

    targets = [w for w in args.workloads if w in ("mlp", "cnn")]
    if args.mode == "quick":
        targets = [w for w in targets if w == "mlp"]
    if args.mode == "toy":
        targets = targets[:1]
    sizes = {
        "toy": {"mlp": (1, 3), "cnn": (1, 2)},
        "quick": {"mlp": (2, 20), "cnn": (1, 3)},
        "full": {"mlp": (5, 40), "cnn": (2, 5)},
    }[args.mode]
    out = {}
    for name in targets:
        rounds, steps = sizes[name]
        if args.rounds:
            rounds = args.rounds
        record = {}
        for ws in (1, 2):
            with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
                path = Path(tmp) / "ddp.json"
                cmd = [
                    sys.executable,
                    str(HERE / "ddp_worker.py"),
                    "--workload",
                    name,
                    "--world-size",
                    str(ws),
                    "--threads",
                    "1",
                    "--rounds",
                    str(rounds),
                    "--steps",
                    str(steps),
                    "--out",
                    str(path),
                    "--seed",
                    str(args.seed),
                ]
                if args.mode == "toy":
                    cmd += ["--toy", "--log-every", "2"]
                env = dict(
                    os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore"
                )
                t0 = time.perf_counter()
                proc = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, cwd=str(HERE.parent)
                )
                log(
                    f"[ddp {name}] world size {ws}: {time.perf_counter() - t0:.1f} s, exit {proc.returncode}"
                )
                if proc.returncode != 0 or not path.exists():
                    record = {
                        "error": f"world size {ws} exited {proc.returncode}: {proc.stderr.strip()[-400:]}"
                    }
                    break
                data = json.loads(path.read_text())
            record["single_blocks" if ws == 1 else "ddp_blocks"] = data["blocks"]
        if "error" not in record:
            summarize_ddp(record)
            record["threads_per_process"] = 1
            record["rounds"], record["steps_per_block"] = rounds, steps
        out[name] = record
    return out


MEMORY_BOUND_MIB = 8.0


def run_memory(args) -> dict:
    """RSS every few hundred steps of the paper MLP, each run in a fresh process (memory_worker.py):
    no monitor, ShiftMonitor every step without history, and with history."""
    from timing import MIB

    steps, every, warm = {
        "toy": (30, 10, 10),
        "quick": (1000, 100, 300),
        "full": (5000, 250, 1000),
    }[args.mode]
    hist_steps = {"toy": 30, "quick": 1000, "full": 2500}[args.mode]
    if args.memory_steps:
        scale = args.memory_steps / steps
        steps, hist_steps = args.memory_steps, max(2, round(hist_steps * scale))
        every, warm = max(1, round(every * scale)), round(warm * scale)
    runs = []
    for key, n in (("none", steps), ("flat", steps), ("history", hist_steps)):
        with tempfile.TemporaryDirectory(prefix="bench_mem_") as tmp:
            path = Path(tmp) / "mem.json"
            cmd = [
                sys.executable,
                str(HERE / "memory_worker.py"),
                "--run", key,
                "--steps", str(n),
                "--every", str(every),
                "--threads", str(args.threads),
                "--device", args.device,
                "--seed", str(args.seed),
                "--out", str(path),
            ]  # fmt: skip
            if args.mode == "toy":
                # The smoke test's budget has no room for three fresh interpreters: the same code
                # runs in this process (the slow test covers the fresh-process path).
                import memory_worker

                memory_worker.main([*cmd[2:], "--toy"])
                proc = subprocess.CompletedProcess(cmd, 0, "", "")
            else:
                env = dict(os.environ, PYTHONWARNINGS="ignore")
                proc = subprocess.run(
                    cmd, env=env, capture_output=True, text=True, cwd=str(HERE.parent)
                )
            if proc.returncode != 0 or not path.exists():
                log(f"[memory] {key}: exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
                runs.append(
                    {
                        "key": key,
                        "label": key,
                        "steps": n,
                        "samples": [],
                        "error": proc.stderr[-400:],
                    }
                )
                continue
            r = json.loads(path.read_text())
        samples = r["samples"]
        after = [(s, v) for s, v in samples if s >= warm] or samples
        first, last = after[0], after[-1]
        r.update(
            rss_first_mib=first[1] / MIB,
            rss_last_mib=last[1] / MIB,
            growth_mib=(last[1] - first[1]) / MIB,
            first_step=first[0],
            last_step=last[0],
        )
        if key == "flat":
            r["bound"] = f"<= {MEMORY_BOUND_MIB:.0f} MiB"
            r["within"] = "yes" if r["growth_mib"] <= MEMORY_BOUND_MIB else "NO"
        runs.append(r)
        log(
            f"[memory] {r['label']}: {n} steps, RSS growth {r['growth_mib']:+.1f} MiB "
            f"after step {first[0]} ({r['wall_s']:.0f} s)"
        )
    hist = next((r for r in runs if r["key"] == "history" and "error" not in r), None)
    bpm = obj_bpm = sites = None
    if hist is not None:
        between = hist["last_step"] - hist["first_step"]  # one measurement per step
        bpm = (hist["rss_last_mib"] - hist["rss_first_mib"]) * MIB / between if between else None
        obj_bpm = hist["history_bytes"] / hist["measurements"] if hist["measurements"] else None
        sites = hist["sites"]
    text = (
        "Paper MLP, ShiftMonitor measuring every step, "
        + (
            "(--toy: runs in this process) "
            if args.mode == "toy"
            else "each run in a fresh process (so that freed memory of earlier runs cannot hide "
            "growth), "
        )
        + f"RSS (`VmRSS`) sampled every {every} steps. "
        f"Growth = last sample minus the first after step {warm} (warm-up: allocator and caches "
        f"fill). Stated bound for `keep_history=False`: {MEMORY_BOUND_MIB:.0f} MiB over the run "
        f"(a leak of 2 KiB per measurement would exceed it over {steps - warm} measurements). The "
        "control shows what the training loop itself does."
    )
    return {
        "runs": runs,
        "bytes_per_measurement": bpm,
        "object_bytes_per_measurement": obj_bpm,
        "sites": sites,
        "bound_mib": MEMORY_BOUND_MIB,
        "text": text,
        "sample_every": every,
        "warmup_steps": warm,
    }


def run_scaling(args) -> dict:
    """Added time per step vs monitored sites (depth sweep) and vs activation size (batch sweep)."""
    from configs import CONFIGS
    from report import summarize_workload
    from timing import run_block
    from workloads import activation_elements, sweep_workload

    grid = {
        "toy": ([1, 3], [16]),
        "quick": ([2, 8, 32], [16, 256, 1024]),
        "full": ([1, 4, 16, 32], [16, 64, 256, 1024]),
    }[args.mode]
    configs = [
        c for c in ("none", "shift_every", "fastai") if c == "none" or c in args.configs
    ] or ["none"]
    if len(configs) == 1:
        configs = ["none", "shift_every", "fastai"]
    points = [("depth", sweep_workload(d, 100, 60)) for d in grid[0]] + [
        ("batch", sweep_workload(2, 256, b)) for b in grid[1]
    ]
    out = []
    for sweep, w in points:
        if args.mode == "toy":
            w = replace(
                w, input_shape=(1, 8, 8), steps=3, quick_steps=3, rounds=1, quick_rounds=1, warmup=1
            )
        rounds = w.quick_rounds if args.mode != "full" else w.rounds
        timed = w.quick_steps if args.mode != "full" else w.steps
        blocks = []
        for r in range(rounds):
            k = r % len(configs)
            for c in configs[k:] + configs[:k]:
                res, _, _ = run_block(
                    w,
                    c,
                    CONFIGS[c].factory,
                    round_index=r,
                    warmup=w.warmup,
                    timed=timed,
                    log_every_n_steps=50,
                    device=args.device,
                    seed=args.seed,
                    time_cap_s=None if c == "none" else (5.0 if args.mode != "full" else 15.0),
                )
                blocks.append(res.as_dict())
        s = summarize_workload(blocks, {c: 1 for c in configs})
        p = dict(
            sweep=sweep,
            title=w.title,
            sites=count_sites(w),
            elements=activation_elements(w),
            none_ms=s["none"]["median_step_ms"],
            added_ms={c: s[c]["added_ms_per_step"] for c in configs if c != "none"},
            ratio={c: s[c]["ratio"] for c in configs if c != "none"},
            blocks=blocks,
        )
        out.append(p)
        log(
            f"[scaling] {w.title}: {p['sites']} sites, added ms "
            + ", ".join(f"{c} {v:.2f}" for c, v in p["added_ms"].items())
        )
    return {"points": out, "configs": configs}


# ----------------------------------------------------------------------------- profile
def run_profile(args) -> int:
    """torch.profiler (CPU, + CUDA on a GPU) and cProfile over a few steps of one configuration."""
    import cProfile
    import io
    import pstats

    import torch
    from configs import CONFIGS
    from lightning.pytorch import Callback
    from timing import run_block

    w = workload_for(args.workloads[0], args.mode)
    warm = max(w.warmup, 3)
    n = args.profile_steps

    class Profile(Callback):
        def __init__(self):
            self.prof = None
            self.cprof = cProfile.Profile()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == warm:
                acts = [torch.profiler.ProfilerActivity.CPU]
                if args.device == "cuda":
                    acts.append(torch.profiler.ProfilerActivity.CUDA)
                self.prof = torch.profiler.profile(activities=acts, record_shapes=True)
                self.prof.__enter__()
                self.cprof.enable()
            elif trainer.global_step == warm + n and self.prof is not None:
                self.cprof.disable()
                self.prof.__exit__(None, None, None)

    prof = Profile()
    res, _, _ = run_block(
        w,
        args.profile,
        CONFIGS[args.profile].factory,
        round_index=0,
        warmup=warm,
        timed=n + 1,
        log_every_n_steps=1 if args.profile == "shift_default" else 50,
        device=args.device,
        seed=args.seed,
        extra_callbacks=[prof],
    )
    if prof.prof is None:
        log("profile: the run ended before the profiled steps")
        return 1
    print(
        f"# {args.profile} on {w.name}: {n} steps profiled after {warm} warm-up steps "
        f"(torch threads {torch.get_num_threads()}){' -- defaults profiled with log_every_n_steps=1' if args.profile == 'shift_default' else ''}"
    )
    print("\n## torch.profiler: top ops by self CPU time\n")
    sort = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    print(prof.prof.key_averages().table(sort_by=sort, row_limit=30))
    s = io.StringIO()
    pstats.Stats(prof.cprof, stream=s).sort_stats("tottime").print_stats(25)
    print("\n## cProfile: top Python functions by own time\n")
    print(s.getvalue())
    s = io.StringIO()
    pstats.Stats(prof.cprof, stream=s).sort_stats("cumulative").print_stats(
        r"shiftkit|benchmarks", 25
    )
    print("\n## cProfile: shiftkit (and benchmark baseline) functions by cumulative time\n")
    print(s.getvalue())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / f"profile_{w.name}_{args.profile}.json"
    prof.prof.export_chrome_trace(str(trace))
    print(f"chrome trace: {trace}")
    return 0


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from timing import quiet_process

    quiet_process(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        raise SystemExit(
            f"--device cuda: torch {torch.__version__} ({build}) sees no CUDA device; "
            "nothing measured (run on a GPU machine, or with --device cpu)"
        )
    if args.profile:
        return run_profile(args)
    if args.rerender:
        return rerender(args)

    from configs import CONFIGS
    from timing import load_average, machine_info

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results = {
        "run": {
            "argv": sys.argv[1:] if argv is None else list(argv),
            "mode": args.mode,
            "seed": args.seed,
            "configs": args.configs,
            "workloads": args.workloads,
            "sections": args.sections,
            "logger": "CSVLogger (temporary folder, flushed every 100 steps) in every configuration",
            "timing": "wall time between consecutive on_train_batch_start calls (time.perf_counter)",
        },
        "machine": machine_info(args.device, args.threads),
        "configs": {
            c: {
                "label": CONFIGS[c].label,
                "period": CONFIGS[c].period,
                "mirrors": CONFIGS[c].mirrors,
            }
            for c in args.configs
        },
        "workloads": {},
    }
    if "timing" in args.sections:
        for name in args.workloads:
            results["workloads"][name] = run_workload(workload_for(name, args.mode), args)
    if "ddp" in args.sections:
        results["ddp"] = run_ddp(args)
    if "memory" in args.sections:
        results["memory"] = run_memory(args)
    if "scaling" in args.sections:
        results["scaling"] = run_scaling(args)
    results["machine"]["load_average_end"] = load_average()
    results["run"]["wall_s"] = round(time.perf_counter() - t_start, 1)
    write_outputs(results, out)
    return 0


def rerender(args) -> int:
    """Recompute every summary from the blocks stored in a previous run's JSON; rewrite outputs."""
    from report import summarize_ddp, summarize_timing

    results = json.loads(Path(args.rerender).read_text())
    for record in results.get("workloads", {}).values():
        summarize_timing(record)
    for record in results.get("ddp", {}).values():
        if "error" not in record:
            summarize_ddp(record)
    results["run"]["rerendered_from"] = str(args.rerender)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(results, out)
    return 0


def write_outputs(results: dict, out: Path) -> None:
    """Targets, figures, ``overhead.md`` (also printed) and ``overhead.json``."""
    from configs import CONFIGS
    from report import evaluate_targets, figures, markdown, write_json

    results["targets"] = evaluate_targets(results)
    labels = {c: CONFIGS[c].label for c in CONFIGS}
    results["figures"] = figures(results, labels, out)
    md = markdown(results, labels)
    (out / "overhead.md").write_text(md)
    write_json(results, out / "overhead.json")
    print(md)
    log(
        f"wrote {out / 'overhead.md'}, {out / 'overhead.json'} and {len(results['figures'])} "
        f"figures ({results['run'].get('wall_s', 0):.0f} s of measuring)"
    )


if __name__ == "__main__":
    sys.exit(main())
