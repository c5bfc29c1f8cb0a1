"""Write ``benchmarks/results/gpu.md`` from what ``benchmarks/gpu.sh`` ran (called by it).

One row per part (exit status, seconds, what it printed last), the ResNet-20 every-step ratio of
the overhead run against the CUDA target (reported, not asserted) and the overhead table's
ResNet-20 rows; the full table stays in the overhead run's folder, linked from here::

    python benchmarks/gpu_report.py --out benchmarks/results/gpu.md --machine machine.txt \\
        --overhead benchmarks/results/gpu \\
        --part "tests marked cuda" tests.log 0 41 --part "overhead benchmark" overhead.log 0 170
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__:  # imported as benchmarks.gpu_report (the tests): no top-level 'report' module, which
    from .report import _verdict, target_every  # would shadow the tests' own 'report' package
else:  # run as a script by gpu.sh
    sys.path.insert(0, str(HERE))
    from report import _verdict, target_every  # noqa: E402

#: The workload the CUDA target is stated on (ResNet-20), and the configuration it is about.
WORKLOAD, CONFIG = "cnn", "shift_every"
#: Lines of each part's log quoted in the report: few when it finished (its numbers are above),
#: more when it failed or ran out of time.
TAIL_OK, TAIL_FAILED = 8, 40
PYTEST_SUMMARY = re.compile(r"\b\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed)\b")


def part_status(code: int, seconds: int, timeout: int | None = None) -> str:
    """'ok', 'timed out after N s' (``timeout`` exits 124, or 137 when it had to kill) or 'exit N'."""
    if code == 0:
        return "ok"
    if code in (124, 137):
        return f"timed out (limit {timeout} s)" if timeout else f"timed out after {seconds} s"
    return f"FAILED (exit {code})"


def pytest_summary(log: str) -> str | None:
    """The last '3 passed, 1 skipped in 12.3s' line of a pytest log, without its '=' rule."""
    lines = [ln.strip(" =") for ln in log.splitlines() if PYTEST_SUMMARY.search(ln)]
    return lines[-1] if lines else None


def every_step_line(results: dict | None) -> tuple[str, str]:
    """The ResNet-20 every-step ratio against its CUDA target: (measured, verdict)."""
    s = (results or {}).get("workloads", {}).get(WORKLOAD, {}).get("summary", {}).get(CONFIG)
    target = target_every(WORKLOAD, "cuda")
    if not s or s.get("ratio") is None:
        return "not measured", "n/a"

    def num(key):
        v = s.get(key)
        return math.nan if v is None else float(v)

    ratio, lo, hi = num("ratio"), num("ratio_min"), num("ratio_max")
    measured = f"{ratio:.3f}x (min-max over {s.get('rounds')} rounds {lo:.3f}-{hi:.3f})"
    return measured, f"{_verdict(ratio, target, lo, hi)} (target <= {target:.2f}x)"


def _fmt(v, spec: str = ".2f") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def overhead_rows(results: dict) -> list[str]:
    """The ResNet-20 rows of the overhead table (ratio, spread, added ms, step ms, CUDA peak)."""
    w = results.get("workloads", {}).get(WORKLOAD)
    if not w:
        return []
    labels = {c: v.get("label", c) for c, v in results.get("configs", {}).items()}
    lines = [
        "| configuration | ratio to none (min-max) | added ms/step | step ms (median) | steps | CUDA peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    for c, s in w["summary"].items():
        ratio = (
            "1 (reference)"
            if c == "none"
            else f"{_fmt(s['ratio'], '.3f')}x ({_fmt(s['ratio_min'], '.3f')}-{_fmt(s['ratio_max'], '.3f')})"
        )
        capped = " (capped)" if s.get("capped_blocks") else ""
        lines.append(
            f"| {labels.get(c, c)} | {ratio} | {_fmt(s['added_ms_per_step'])} | "
            f"{_fmt(s['median_step_ms'])} | {s['n_steps']}{capped} | {_fmt(s.get('cuda_peak_mib'), '.0f')} |"
        )
    return lines


def render(
    machine: str,
    parts: list[tuple[str, str, int, int]],
    overhead_dir: Path | None,
    out: Path,
    timeouts: dict[str, int] | None = None,
) -> str:
    """The Markdown of gpu.md. ``parts``: (name, log path, exit status, seconds) in run order."""
    timeouts = timeouts or {}
    results = None
    if overhead_dir is not None and (overhead_dir / "overhead.json").exists():
        results = json.loads((overhead_dir / "overhead.json").read_text())
    measured, verdict = every_step_line(results)
    lines = [
        "# GPU check (`benchmarks/gpu.sh`)",
        "",
        (
            "Written by `bash benchmarks/gpu.sh`: the tests marked `cuda`, then the overhead "
            "benchmark with `--device cuda` on ResNet-20 (see `benchmarks/README.md`). Targets are "
            "reported, not asserted."
        ),
        "",
        "```",
        machine.rstrip(),
        "```",
        "",
        "| part | result | seconds |",
        "|---|---|---|",
    ]
    logs = {}
    for name, log_path, code, seconds in parts:
        log = Path(log_path).read_text(errors="replace") if Path(log_path).exists() else ""
        logs[name] = log
        result = part_status(code, seconds, timeouts.get(name))
        summary = pytest_summary(log)
        if summary:
            result += f": {summary}"
        lines.append(f"| {name} | {result} | {seconds} |")
    lines += [
        (
            "| ResNet-20, ShiftMonitor every step + histograms, step-time ratio to no monitor | "
            f"{measured}: {verdict} | |"
        ),
        "",
    ]
    if results is not None:
        rel = os.path.relpath(overhead_dir / "overhead.md", out.parent)
        m, run = results.get("machine", {}), results.get("run", {})
        lines += [
            "## Overhead on ResNet-20",
            "",
            (
                f"Full table, phase breakdown and targets: [`{rel}`]({rel}) "
                f"({run.get('wall_s')} s of measuring; argv `{' '.join(run.get('argv', []))}`; "
                f"{m.get('cpu_model')}, {m.get('logical_cores')} logical cores, torch threads "
                f"{m.get('torch_threads')})."
            ),
            "",
            *overhead_rows(results),
            "",
        ]
        rows = [r for r in results.get("targets", []) if r["workload"] == WORKLOAD]
        if rows:
            lines += ["| target | measured | met |", "|---|---|---|"]
            lines += [f"| {r['target']} | {r['measured']} | {r['met']} |" for r in rows]
            lines.append("")
    for name, log_path, code, _ in parts:
        tail = logs[name].rstrip().splitlines()[-(TAIL_OK if code == 0 else TAIL_FAILED) :]
        lines += [
            f"## {name}: the last {len(tail)} lines of its output",
            "",
            f"Whole log: `{log_path}`.",
            "",
            "```",
            *tail,
            "```",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/gpu_report.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, required=True, help="the Markdown file to write")
    p.add_argument("--machine", type=Path, required=True, help="a text file describing the machine")
    p.add_argument("--overhead", type=Path, default=None, help="the overhead run's --out folder")
    p.add_argument(
        "--part",
        nargs=4,
        action="append",
        default=[],
        metavar=("NAME", "LOG", "EXIT", "SECONDS"),
        help="one part that ran, in order (repeat)",
    )
    p.add_argument(
        "--timeout",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "SECONDS"),
        help="a part's time limit, named when it ran out (repeat)",
    )
    args = p.parse_args(argv)
    parts = [(n, log, int(code), int(secs)) for n, log, code, secs in args.part]
    timeouts = {n: int(s) for n, s in args.timeout}
    md = render(args.machine.read_text(), parts, args.overhead, args.out, timeouts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
