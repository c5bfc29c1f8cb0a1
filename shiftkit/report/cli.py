"""``shiftkit report``: run records -> reports/NAME/README.md with figures; optionally a W&B Report.

``shiftkit.command`` dispatches ``shiftkit report ...`` to :func:`main` with the arguments after
``report``. Exit status: 0 done, 1 failed (message on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

EPILOG = """\
examples:
  shiftkit report runs/mnist_fig1 -o reports/mnist_fig1
  shiftkit report runs/ --claims C1,C5 --title "BN and shift"
  shiftkit report runs/mnist_fig1 --wandb-report my-team/shiftkit --draft
  shiftkit report runs/mnist_fig1 --wandb-report my-team/shiftkit --spec-out report_spec.json   # no network
  shiftkit report --index reports

Offline W&B runs (WANDB_MODE=offline) are uploaded later with `wandb sync wandb/offline-run-*`;
then --wandb-report can plot them.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shiftkit report", description=__doc__.splitlines()[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("runs_dirs", nargs="*", metavar="RUNS_DIR", help="directories holding run directories (any depth)")
    p.add_argument("-o", "--out", metavar="DIR", help="report directory (default: reports/<name of RUNS_DIR>)")
    p.add_argument("--claims", metavar="C1,C2,...", help="claims to report (default: those whose recipes have runs)")
    p.add_argument("--title", help="report title")
    p.add_argument("--target", type=float, metavar="ACC", help="target accuracy (fraction) for steps-to-target; "
                   "default: the runs' target_accuracy")  # fmt: skip
    p.add_argument("--seed", type=int, help="seed of the single-run figures (default: the smallest)")
    p.add_argument("--stat", default="kl_gauss", help="shift statistic of the heat maps and of C5 (default kl_gauss)")
    p.add_argument("--dpi", type=int, default=150, help="figure resolution (default 150)")
    p.add_argument("--subtract-floor", action="store_true",
                   help="heat maps show each statistic minus its noise floor at the run's batch size")
    p.add_argument("--no-figures", action="store_true", help="tables only (fast)")
    p.add_argument("--copy-records", action="store_true",
                   help="copy the runs' small record files into the report (to rebuild it without the runs)")
    p.add_argument("--no-index", action="store_true", help="do not update the reports/README.md index")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--index", metavar="REPORTS_DIR", help="only rewrite REPORTS_DIR/README.md, the index of all reports")
    p.add_argument("--split", action="store_true",
                   help="one report per recipe, in OUT/<recipe> (OUT default: reports), then the index")
    w = p.add_argument_group("W&B")
    w.add_argument("--wandb-project", metavar="ENTITY/PROJECT", help="also read the runs of this W&B project (online)")
    w.add_argument("--wandb-report", metavar="ENTITY/PROJECT", help="build a W&B Report in this project")
    w.add_argument("--draft", action="store_true", help="save the W&B Report as a draft")
    w.add_argument("--spec-out", metavar="FILE", help="write the W&B Report spec (JSON) to FILE and do not save "
                   "it: no network")  # fmt: skip
    w.add_argument("--wandb-stats", default="kl_gauss", metavar="STAT,...",
                   help="shift statistics plotted per layer in the W&B Report (default kl_gauss)")
    w.add_argument("--figures-url", metavar="URL", help="base URL serving the report's PNGs (adds image blocks)")
    w.add_argument("--wandb-timeout", type=float, default=60.0, metavar="S", help="deadline for W&B calls (default 60)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.index:
        if args.runs_dirs:
            parser.error("--index rewrites the index only; give no RUNS_DIR with it")
        from shiftkit.report.index import write_reports_index

        return _run(lambda: print(f"wrote {write_reports_index(args.index)}"))
    if not args.runs_dirs and not args.wandb_project:
        parser.error("give RUNS_DIR (or --wandb-project ENTITY/PROJECT)")
    if (args.draft or args.spec_out) and not args.wandb_report:
        parser.error("--draft and --spec-out need --wandb-report ENTITY/PROJECT")
    if args.split and (args.wandb_report or args.wandb_project or args.claims):
        parser.error("--split makes one report per recipe; it takes no --claims or W&B options")
    from shiftkit.report.wandb_report import parse_wandb_path

    for flag in ("wandb_project", "wandb_report"):
        if getattr(args, flag):
            try:
                parse_wandb_path(getattr(args, flag))
            except ValueError as err:
                parser.error(f"--{flag.replace('_', '-')}: {err}")
    claims = [c.strip().upper() for c in args.claims.split(",") if c.strip()] if args.claims else None
    if args.split:
        return _run(lambda: _split(args, argv))
    return _run(lambda: _report(args, claims, argv))


def _run(work) -> int:
    try:
        work()
    except Exception as err:  # noqa: BLE001 - the command's one error path: a message, status 1
        from shiftkit.report.wandb_report import WandbReportError

        kind = "" if isinstance(err, (WandbReportError, ValueError, FileNotFoundError, FileExistsError)) else f"{type(err).__name__}: "
        print(f"shiftkit report: error: {kind}{err}", file=sys.stderr)
        return 1
    return 0


def _report(args, claims, argv) -> None:
    from shiftkit.report.build import build_report
    from shiftkit.report.wandb_report import check_online, reports_api

    wandb_save = bool(args.wandb_report and not args.spec_out)
    if args.wandb_report:  # fail fast, before the (slow) local report
        reports_api()
    if wandb_save:
        check_online(timeout=min(5.0, args.wandb_timeout))
    runs = []
    if args.wandb_project:
        from shiftkit.report.wandb_source import read_wandb_runs

        runs = read_wandb_runs(args.wandb_project, timeout=args.wandb_timeout)
    name = Path(args.runs_dirs[0]).resolve().name if args.runs_dirs else args.wandb_project.split("/")[1]
    out = Path(args.out or Path("reports") / name)
    command = "shiftkit report " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    t0 = time.monotonic()
    result = build_report(args.runs_dirs, out, runs=runs, claims=claims, title=args.title,
                          figures=not args.no_figures, target=args.target, seed=args.seed, stat=args.stat,
                          subtract_floor=args.subtract_floor, dpi=args.dpi, command=command, copy_records=args.copy_records,
                          progress=not args.no_progress)  # fmt: skip
    verdicts = ", ".join(f"{o.claim.id} {o.status}" for o in result.outcomes) or "no claims"
    print(f"wrote {result.readme} ({result.n_runs} runs, {len(result.figures)} figures, "
          f"{time.monotonic() - t0:.1f} s): {verdicts}")  # fmt: skip
    if not args.no_index:
        _update_index(out)
    if args.wandb_report:
        _wandb(args, result)


def _split(args, argv) -> None:
    """One report per recipe found below RUNS_DIR..., in OUT/<recipe>; then OUT/README.md."""
    from shiftkit.report.build import build_report, read_all_runs
    from shiftkit.report.cohort import group_cohorts
    from shiftkit.report.index import write_reports_index

    runs, _ = read_all_runs(args.runs_dirs, progress=not args.no_progress)
    if not runs:
        raise ValueError(f"no run records (result.json) found under {', '.join(args.runs_dirs)}")
    out_root = Path(args.out or "reports")
    command = "shiftkit report " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    for recipe, cohort in group_cohorts(runs).items():
        result = build_report([], out_root / recipe, runs=cohort.runs, title=args.title and f"{args.title}: {recipe}",
                              figures=not args.no_figures, target=args.target, seed=args.seed, stat=args.stat,
                              subtract_floor=args.subtract_floor, dpi=args.dpi, command=command, copy_records=args.copy_records,
                              progress=not args.no_progress, paths_relative_to=args.runs_dirs)  # fmt: skip
        verdicts = ", ".join(f"{o.claim.id} {o.status}" for o in result.outcomes) or "no claims"
        print(f"wrote {result.readme} ({result.n_runs} runs, {len(result.figures)} figures): {verdicts}")
    if not args.no_index:
        print(f"updated {write_reports_index(out_root)}")


def _update_index(out: Path) -> None:
    """Rewrite the parent's index when the report sits in a ``reports/`` directory (or one that
    already has a generated index)."""
    from shiftkit.report.index import INDEX_MARKER, write_reports_index

    parent = out.resolve().parent
    index = parent / "README.md"
    generated = index.is_file() and index.read_text(encoding="utf-8").startswith(INDEX_MARKER)
    if generated or (parent.name == "reports" and not index.exists()):
        print(f"updated {write_reports_index(parent)}")


def _wandb(args, result) -> None:
    from shiftkit.report.wandb_report import (
        build_wandb_report,
        parse_wandb_path,
        save_wandb_report,
        write_report_spec,  # fmt: skip
    )

    entity, project = parse_wandb_path(args.wandb_report)
    stats = [s.strip() for s in args.wandb_stats.split(",") if s.strip()]
    figures_run = f"report-{result.out_dir.name}"
    report = build_wandb_report(result.outcomes, result.cohorts, entity, project, title=result.title,
                                description=f"Generated by `{result.command}`.", stats=stats,
                                figures_run=figures_run if result.figures else None,
                                figures_url=args.figures_url, resolve_projects=not args.spec_out)  # fmt: skip
    if args.spec_out:
        print(f"wrote the W&B Report spec to {write_report_spec(report, args.spec_out)} (not saved: --spec-out)")
        return
    figures = [(f.file, result.out_dir / f.file) for f in result.figures]
    url = save_wandb_report(report, draft=args.draft, timeout=args.wandb_timeout, figures=figures,
                            figures_run=figures_run)  # fmt: skip
    print(f"saved the W&B Report{' (draft)' if args.draft else ''}: {url}")


if __name__ == "__main__":
    sys.exit(main())
