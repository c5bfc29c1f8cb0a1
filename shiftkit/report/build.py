"""Build a report directory from run records: README.md, figures, results.csv, report.json."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from shiftkit.records import (
    HISTOGRAMS_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    RESULT_FILE,
    Run,
    find_runs,
    read_run,
)
from shiftkit.records.atomic import atomic_write_bytes
from shiftkit.report.claims.base import INCONCLUSIVE, NOT_RUN, ClaimOutcome, Context, Figure
from shiftkit.report.claims.registry import CLAIMS, CLAIMS_BY_ID, CLAIMS_BY_RECIPE
from shiftkit.report.cohort import (
    SIGMOID_SATURATION,
    Cohort,
    accuracy_long,
    activation_sites,
    describe_setup,
    group_cohorts,
    history_long,
    late_site_means,
    saturating_sites,
    site_order,
)
from shiftkit.report.facts import config_value, steps_to_target
from shiftkit.report.markdown import claim_section, claims_table, figure_md, rules_section
from shiftkit.report.summary import MIN_SEEDS

GENERIC_FIGURES = ("accuracy", "heatmap", "colorful")
"""Figures drawn for a recipe no claim knows."""
REPORT_META = "report.json"
RESULTS_CSV = "results.csv"
RECORDS_DIR = "records"
MAX_COLORFUL_VARIANTS = 6
HEATMAP_CLIP = 99.0
"""Heat maps clip their colour scale at this percentile of the cells (a step-0 spike must not wash out
the rest); the caption says so."""


def reference_text(cohort: Cohort) -> str:
    """What the monitor compared each measurement with, from the runs' configs (for captions)."""
    cfg = cohort.config()
    mode, every = config_value(cfg, "reference") or "previous", config_value(cfg, "every_n_steps")
    if mode == "previous":
        return f"the measurement {every} steps earlier" if every else "the previous measurement"
    return {"initial": "the first measurement", "probe": "the previous measurement of a fixed probe batch"}.get(
        mode, f"the `{mode}` reference")


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    out_dir: Path
    readme: Path
    results_csv: Path
    outcomes: list[ClaimOutcome]
    figures: list[Figure] = field(default_factory=list)
    n_runs: int = 0
    skipped: list[str] = field(default_factory=list)
    cohorts: dict[str, Cohort] = field(default_factory=dict)
    title: str = ""
    command: str = ""


def read_all_runs(dirs: Iterable[str | os.PathLike], progress: bool = True) -> tuple[list[Run], list[str]]:
    """Every run below ``dirs``; unreadable run directories are skipped with a warning (and listed)."""
    from tqdm.auto import tqdm

    paths = [p for d in dirs for p in find_runs(d)]
    runs, skipped = [], []
    for path in tqdm(paths, desc="reading runs", unit="run", disable=not progress, file=sys.stderr, leave=False):
        try:
            runs.append(read_run(path))
        except (OSError, ValueError) as err:
            warnings.warn(f"shiftkit report: skipping {path}: {err}", stacklevel=2)
            skipped.append(f"{path}: {err}")
    return runs, skipped


def build_report(
    runs_dirs: Sequence[str | os.PathLike] = (),
    out_dir: str | os.PathLike = "reports/report",
    *,
    runs: Sequence[Run] | None = None,
    claims: Sequence[str] | None = None,
    title: str | None = None,
    figures: bool = True,
    target: float | None = None,
    seed: int | None = None,
    stat: str = "kl_gauss",
    subtract_floor: bool = False,
    dpi: int = 150,
    command: str | None = None,
    copy_records: bool = False,
    progress: bool = True,
    paths_relative_to: Sequence[str | os.PathLike] | None = None,
) -> ReportResult:
    """Read the runs, decide the claims, draw the figures and write the report.

    Args:
        runs_dirs: directories searched for run directories (any depth).
        out_dir: the report directory (created; files in it are overwritten).
        runs: runs already read (e.g. from W&B), added to those of ``runs_dirs``.
        claims: claim ids to report (``["C1", "C5"]``); a claim without runs is listed as not run.
            Default: the claims whose recipes have runs, and a line naming the others.
        title: the README's title (default from the output directory's name).
        figures: draw the figures (False: tables only, much faster).
        target: target accuracy (fraction) for steps-to-target; default the runs' ``target_accuracy``.
        seed: the seed of single-run figures (percentile bands, colorful dimension); default the smallest.
        stat: the shift statistic of heat maps and of the C5 shift number.
        subtract_floor: heat maps show the statistic minus its noise floor (``{stat}_floor``, what two
            batches of one unchanging distribution give at the run's batch size) where it was recorded.
        dpi: figure resolution.
        command: the command line to print as "regenerate with" (default reconstructed).
        copy_records: also copy each run's small record files (``result.json``, ``metrics.csv``,
            ``shift_history.csv``, ``shift_histograms.npz``) under ``out_dir/records/``, so the
            report can be rebuilt from the report directory alone.
        progress: show progress bars on stderr.
        paths_relative_to: results.csv names each run by its path relative to the parent of the
            first of these directories that holds it (default ``runs_dirs``), so that a committed
            report holds no machine-specific absolute paths.

    Raises:
        ValueError: no run was found, or an unknown claim id was asked for.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    unknown = [c for c in claims or () if c not in CLAIMS_BY_ID]
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; known: {', '.join(CLAIMS_BY_ID)}")
    found, skipped = read_all_runs(runs_dirs, progress)
    all_runs = found + list(runs or [])
    if not all_runs:
        where = ", ".join(str(d) for d in runs_dirs) or "the given sources"
        raise ValueError(f"no run records (result.json) found under {where}")
    cohorts = group_cohorts(all_runs)
    requested = [CLAIMS_BY_ID[c] for c in claims] if claims else [c for c in CLAIMS if c.recipe in cohorts]
    ctx = Context(out_dir=out, figures=figures, target=target, seed=seed, dpi=dpi, stat=stat,
                  subtract_floor=subtract_floor)
    out.mkdir(parents=True, exist_ok=True)

    outcomes: list[ClaimOutcome] = []
    recipe_figures: dict[str, list[Figure]] = {}
    for claim in tqdm(requested, desc="claims", unit="claim", disable=not progress, file=sys.stderr, leave=False):
        cohort = cohorts.get(claim.recipe)
        if cohort is None:
            outcomes.append(ClaimOutcome(claim, NOT_RUN))
            continue
        outcome = _evaluate(claim, claim.evaluate, cohort, ctx)
        for amendment in claim.amendments:  # beside the pre-registered verdict, never instead of it
            quiet = Context(**{**ctx.__dict__, "figures": False})
            outcome.amended.append((amendment, _evaluate(claim, amendment.evaluate, cohort, quiet)))
        foreign = sorted({f.seed for f in cohort.facts} - set(claim.prereg.seeds))
        if foreign:
            outcome.notes.append(f"Runs with seeds outside the pre-registered ones ({', '.join(map(str, foreign))}) "
                                 "are in these records: a verdict they enter is exploratory, not pre-registered.")
        outcomes.append(outcome)
        if figures:
            recipe_figures[claim.recipe] = draw_recipe_figures(cohort, claim.generic, ctx)
    other = [r for r in cohorts if r not in CLAIMS_BY_RECIPE]
    for recipe in other:
        recipe_figures[recipe] = draw_recipe_figures(cohorts[recipe], GENERIC_FIGURES, ctx) if figures else []

    roots = runs_dirs if paths_relative_to is None else paths_relative_to
    results = results_table(cohorts, outcomes, ctx, relative_to=[Path(d) for d in roots])
    results_path = out / RESULTS_CSV
    atomic_write_bytes(results_path, results.to_csv(index=False, float_format="%.10g").encode())
    if copy_records:
        copy_run_records(all_runs, out / RECORDS_DIR)
    title = title or f"shiftkit report: {out.name}"
    command = command or default_command(runs_dirs, out, claims)
    readme = write_readme(out, title, command, cohorts, outcomes, recipe_figures, other, skipped, claims is None)
    write_meta(out, title, command, runs_dirs, cohorts, outcomes)
    all_figures = [f for o in outcomes for f in o.figures] + [f for fs in recipe_figures.values() for f in fs]
    return ReportResult(out, readme, results_path, outcomes, all_figures, len(all_runs), skipped, cohorts, title, command)


def _evaluate(claim, evaluate, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    try:
        return evaluate(claim, cohort, ctx)
    except Exception as err:  # one claim's failure must not lose the others
        traceback.print_exc(file=sys.stderr)
        return ClaimOutcome(claim, INCONCLUSIVE, notes=[f"evaluation failed: {type(err).__name__}: {err}"])


def default_command(runs_dirs, out: Path, claims) -> str:
    parts = ["shiftkit", "report", *map(str, runs_dirs), "-o", str(out)]
    if claims:
        parts += ["--claims", ",".join(claims)]
    return " ".join(parts)


# ----------------------------------------------------------------------------- figures


def draw_recipe_figures(cohort: Cohort, kinds: Sequence[str], ctx: Context) -> list[Figure]:
    """The recipe-level figures (accuracy curves, shift heat map, colorful dimension)."""
    figs = []
    labels = cohort.labels()
    order = [labels[v] for v in cohort.variants()]
    name = cohort.recipe
    if "accuracy" in kinds:
        from shiftkit.report.figures.accuracy import plot_accuracy

        acc = accuracy_long(cohort.pairs, labels)
        if len(acc):
            file = f"{name}_accuracy.png"
            plot_accuracy(acc, ctx.out_dir / file, order=order, title=f"{name}: accuracy vs step", dpi=ctx.dpi)
            figs.append(Figure(file, f"`{name}`: held-out accuracy vs step per variant, mean ± sd over seeds."))
    if "heatmap" in kinds:
        from shiftkit.report.figures.heatmap import plot_shift_heatmap

        df = history_long(cohort.pairs, ctx.stat, labels)
        if len(df) and df["value"].notna().any():
            file = f"{name}_heatmap_{ctx.stat}.png"
            sites = site_order(r.history for r in cohort.runs)
            floor = history_long(cohort.pairs, f"{ctx.stat}_floor", labels)
            if len(floor) == len(df):
                df[f"{ctx.stat}_floor"] = floor["value"].to_numpy()
            reference = reference_text(cohort)
            plot_shift_heatmap(df, ctx.out_dir / file, stat=ctx.stat, sites=sites, order=order,
                               title=f"{name}: per-layer shift ({ctx.stat})", dpi=ctx.dpi, reference=reference,
                               subtract_floor=ctx.subtract_floor, clip_percentile=HEATMAP_CLIP)  # fmt: skip
            figs.append(Figure(file, (
                f"`{name}`: shift of each monitored layer input (`{ctx.stat}` to {reference}, mean over seeds"
                + (", minus the noise floor of its batch size" if ctx.subtract_floor else "")
                + f") by step, one panel per variant, one colour scale clipped at the {HEATMAP_CLIP:g}th "
                "percentile; grey: site absent or undefined (the first measurement has no reference).")))  # fmt: skip
    if "colorful" in kinds:
        from shiftkit.report.figures.colorful import plot_colorful

        seed = cohort.figure_seed(ctx.seed)
        hists, sites = {}, []
        for variant in cohort.variants()[:MAX_COLORFUL_VARIANTS]:
            run = next((r for r, f in cohort.of_variant(variant) if f.seed == seed and r.histograms is not None), None)
            if run is None:
                continue
            hists[labels[variant]] = run.histograms
            for s in activation_sites(run.history) or [str(x) for x in run.histograms["sites"]]:
                if s not in sites:
                    sites.append(s)
        if hists:
            file = f"{name}_colorful.png"
            saturating = {s for r, _ in cohort.pairs for s in saturating_sites(r.history)}
            plot_colorful(hists, ctx.out_dir / file, sites=sites, seed=seed,
                          title=f"{name}: activation histograms by step", dpi=ctx.dpi,
                          saturation=SIGMOID_SATURATION, saturating_sites=saturating)  # fmt: skip
            figs.append(Figure(file, (
                f"`{name}`, seed {seed}: \"colorful dimension\" plot — for each activation input (columns) "
                "and variant (rows), the histogram of the input's values at each step on a log colour "
                "scale, with fixed edges per layer; hatched strips hold the values outside the edges "
                "(saturation), the dashed line is 0.")))  # fmt: skip
    return figs


# ----------------------------------------------------------------------------- tables


def results_table(cohorts: dict[str, Cohort], outcomes: list[ClaimOutcome], ctx: Context,
                  relative_to: Sequence[Path] = ()) -> pd.DataFrame:  # fmt: skip
    """One row per run: its facts, steps to target, its mean shift and late saturation, and the
    per-run numbers each claim was computed from (columns ``C1:...``)."""
    per_run: dict[str, dict[str, float]] = {}
    for o in outcomes:
        for path, cols in o.per_run.items():
            per_run.setdefault(path, {}).update(cols)
    rows = []
    for cohort in cohorts.values():
        target = cohort.target_accuracy(ctx.target)
        for run, f in cohort.pairs:
            row = dict(recipe=f.recipe, variant=f.variant, seed=f.seed, norm=f.norm, lr=f.lr,
                       lr_multiplier=f.lr_multiplier, init_scale=f.init_scale,
                       per_device_batch=f.per_device_batch, global_batch=f.global_batch, synced=f.synced,
                       final_acc=f.final_acc, acc_source=f.acc_source, diverged=f.diverged,
                       diverged_step=f.diverged_step, steps=f.steps, target_accuracy=target,
                       steps_to_target=steps_to_target(run, target) if math.isfinite(target) else float("nan"))  # fmt: skip
            h = run.history
            if h is not None and ctx.stat in h.columns:
                row[f"mean_{ctx.stat}"] = float(h.groupby("step")[ctx.stat].mean().mean())
            late_sat = late_site_means(h, "sat_frac")
            if len(late_sat):
                row["late_sat_frac"] = float(late_sat.mean())
            row.update(per_run.get(f.path, {}))
            row["path"] = _relative(f.path, relative_to)
            rows.append(row)
    df = pd.DataFrame(rows)
    claim_cols = sorted(c for c in df.columns if ":" in c)
    first = [c for c in df.columns if c not in claim_cols and c != "path"]
    return df[first + claim_cols + ["path"]] if len(df) else df


def _relative(path: str, roots: Sequence[Path]) -> str:
    for root in roots:
        try:
            return str(Path(path).resolve().relative_to(root.resolve().parent))
        except ValueError:
            continue
    return path


SEED_KEY = "seed_everything"
NAME_KEYS = ("variant", "recipe")
"""Names, not values: a cell is named by what its config sets, its variant name only as a last resort."""


def _flat(config: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}" if key != "init_args" else prefix.rstrip(".")
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}." if name else ""))
        else:
            out[name] = value if not isinstance(value, list) else tuple(map(str, value))
    return out


def cell_names(runs: Sequence[Run]) -> dict[str, str]:
    """Each run's record folder, ``{recipe}/{k=v,...}/seed={seed}``: the config values that vary
    among the runs of its recipe (every grid key and variant override; short names where they are
    unique), so that no two runs of a grid share a folder.

    Example:
        >>> from types import SimpleNamespace as R
        >>> runs = [R(path=f"r{i}", result=dict(recipe="c2", seed=s, config=dict(model=dict(norm=n, lr=0.01),
        ...         seed_everything=s))) for i, (n, s) in enumerate([("none", 1), ("batch", 1), ("none", 2)])]
        >>> sorted(cell_names(runs).values())
        ['c2/norm=batch/seed=1', 'c2/norm=none/seed=1', 'c2/norm=none/seed=2']
    """
    by_recipe: dict[str, list[Run]] = {}
    for run in runs:
        by_recipe.setdefault(str(run.result.get("recipe") or "unnamed"), []).append(run)
    names = {}
    for recipe, group in by_recipe.items():
        flats = [_flat(r.result.get("config") or {}) for r in group]
        keys = sorted({k for f in flats for k in f})
        varying = [k for k in keys if k != SEED_KEY and k not in NAME_KEYS and len({repr(f.get(k)) for f in flats}) > 1]
        shorts = [k.rsplit(".", 1)[-1] for k in varying]
        label = {k: (s if shorts.count(s) == 1 else k) for k, s in zip(varying, shorts)}
        for run, flat in zip(group, flats):
            cell = ",".join(f"{label[k]}={flat.get(k)}" for k in varying) or str(run.result.get("variant") or "default")
            names[str(run.path)] = f"{recipe}/{cell}/seed={run.result.get('seed')}"
    return names


def copy_run_records(runs: Sequence[Run], dest: Path) -> None:
    """Copy the small record files of each run to ``dest/{recipe}/{cell}/seed={seed}/`` (see
    :func:`cell_names`).

    Raises:
        FileExistsError: two runs map to one folder, or a folder already holds a different run's
            record (a record is never overwritten; a folder with this very run is left as it is).
    """
    names = cell_names(runs)
    seen: dict[str, str] = {}
    for run in runs:
        rel = names[str(run.path)]
        if rel in seen:
            raise FileExistsError(f"runs {seen[rel]} and {run.path} both map to record folder {rel}")
        seen[rel] = str(run.path)
    for run in runs:
        target = dest / names[str(run.path)]
        existing = target / RESULT_FILE
        if existing.is_file():
            old = json.loads(existing.read_text(encoding="utf-8"))
            if (old.get("config_hash"), old.get("seed")) != (run.result.get("config_hash"), run.result.get("seed")):
                raise FileExistsError(f"{target} already holds another run's record; not overwriting it")
            if Path(run.path).resolve() == target.resolve():
                continue
        target.mkdir(parents=True, exist_ok=True)
        for name in (RESULT_FILE, METRICS_FILE, HISTORY_FILE, HISTOGRAMS_FILE):
            if (Path(run.path) / name).is_file():
                shutil.copyfile(Path(run.path) / name, target / name)


# ----------------------------------------------------------------------------- README


def write_readme(out: Path, title: str, command: str, cohorts: dict[str, Cohort], outcomes: list[ClaimOutcome],
                 recipe_figures: dict[str, list[Figure]], other: list[str], skipped: list[str],
                 default_claims: bool) -> Path:  # fmt: skip
    n_runs = sum(len(c.runs) for c in cohorts.values())
    recipes = ", ".join(f"`{r}` ({c.n_cells()} grid cells × {len(c.seeds())} seeds)" for r, c in cohorts.items())
    parts = [f"# {title}", "",
             f"Generated by `{command}` from {n_runs} runs: {recipes}. Every number below is computed "
             f"from the run records; the per-run numbers are in [`{RESULTS_CSV}`]({RESULTS_CSV}).", "",
             "## Claims", "", claims_table(outcomes), ""]  # fmt: skip
    if default_claims:
        absent = [c for c in CLAIMS if c.recipe not in cohorts]
        if absent:
            parts += ["Not run in these records: " + ", ".join(f"{c.id} (`{c.recipe}`)" for c in absent) + ".", ""]
    few = [o for o in outcomes if o.few_seeds]
    if few:
        parts += [f"⚠ Fewer than {MIN_SEEDS} seeds: " + ", ".join(f"{o.claim.id} (n={o.min_seeds})" for o in few)
                  + " — these verdicts rest on too few seeds to be trusted.", ""]  # fmt: skip
    if outcomes:
        parts += ["*Measured*: mean ± sample sd over seeds (n = seeds). *Reproduced*: **yes** = every check of "
                  "the claim's decision rule passed, **partly** = some did, **no** = none did "
                  "(see [Decision rules](#decision-rules)).", ""]  # fmt: skip
    for o in outcomes:
        parts += [claim_section(o, recipe_figures.get(o.claim.recipe, [])), ""]
    for recipe in other:
        parts += [f"## Recipe `{recipe}` (no claim)", "", f"**Setup.** {describe_setup(cohorts[recipe])}", ""]
        for fig in recipe_figures.get(recipe, []):
            parts += [figure_md(fig), ""]
    parts += [rules_section(outcomes), "", "## Data", "",
              f"- [`{RESULTS_CSV}`]({RESULTS_CSV}): one row per run — recipe, variant, seed, the facts read "
              "from its config (norm, LR multiplier, init scale, batch sizes), final accuracy and where it "
              "came from, divergence, steps to the target, the mean shift, and the per-run numbers each "
              "claim used (columns `C1:...`).",
              f"- Regenerate: `{command}`."]  # fmt: skip
    if skipped:
        parts += ["", "Skipped (unreadable) run directories:", ""] + [f"- {s}" for s in skipped]
    path = out / "README.md"
    atomic_write_bytes(path, ("\n".join(parts).rstrip() + "\n").encode("utf-8"))
    return path


def _parallel_runs(cohort: Cohort, cores: int = 2) -> int:
    """How many of the cohort's runs fit on ``cores`` cores at once (a run of k ranks takes k):
    the sweep's ``--jobs``, used to estimate its wall time from the runs' own."""
    world = max((int(r.result.get("world_size") or 1) for r in cohort.runs), default=1)
    return max(1, cores // world)


def write_meta(out: Path, title: str, command: str, runs_dirs, cohorts, outcomes) -> Path:
    """``report.json``: what the index of all reports needs (title, command, recipes, verdicts)."""
    from shiftkit import __version__

    meta = dict(title=title, command=command, runs_dirs=[str(d) for d in runs_dirs], recipes=sorted(cohorts),
                n_runs=sum(len(c.runs) for c in cohorts.values()),
                run_wall_time_s=sum(float(r.result.get("wall_time_s") or 0.0) for c in cohorts.values() for r in c.runs),
                parallel_runs=min((_parallel_runs(c) for c in cohorts.values()), default=1),
                claims=[dict(id=o.claim.id, status=o.status, min_seeds=o.min_seeds, prereg=o.claim.prereg.commit,
                             checks=[dict(name=c.name, passed=c.passed, detail=c.detail) for c in o.checks],
                             amended=[a.status for _, a in o.amended]) for o in outcomes],
                shiftkit_version=__version__)  # fmt: skip
    path = out / REPORT_META
    atomic_write_bytes(path, (json.dumps(meta, indent=2) + "\n").encode("utf-8"))
    return path
