"""The report as a W&B Report (``wandb_workspaces.reports.v2``): claims table, per-layer shift
line plots over the runs in W&B, and the figures.

Offline first: :func:`build_wandb_report` makes the report object without any network call (the
entity is always given explicitly, and a run set is given its project only when
``resolve_projects=True`` -- ``wr.Runset`` looks a project's id up over the network as soon as it
has both an entity and a project). :func:`report_spec` turns it into the JSON-able dict W&B would
store. :func:`save_wandb_report` checks for credentials before any network call, probes the host
with a short timeout, and runs the upload and the save under a deadline, so it fails fast with a
clear :class:`WandbReportError` instead of hanging.

Run sets select the project's runs whose W&B config has ``recipe`` equal to the recipe's name and
group them by ``config.variant``: the training CLI must log ``recipe``/``variant``/``seed`` in the
W&B run config (as it does in ``result.json``). The x axis is Lightning's ``trainer/global_step``.
"""

from __future__ import annotations

import json
import netrc
import os
import socket
import threading
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from shiftkit.records import GLOBAL_STEP, VAL_ACC, shift_key
from shiftkit.records.names import grad_ics_key, landscape_key, parse_grad_ics_key
from shiftkit.report.claims.base import NOT_RUN, ClaimOutcome, Figure
from shiftkit.report.cohort import Cohort, metric_columns, site_order
from shiftkit.report.markdown import claims_table

DEFAULT_HOST = "https://api.wandb.ai"
FIGURES_JOB_TYPE = "report"
MEDIA_PREFIX = "report/"
"""Figures are logged to the figures run under ``report/{figure file stem}``."""
LOG_STATS = frozenset({"kl_gauss", "kl_hist", "js_hist", "kl_gauss_floor"})
"""Statistics drawn on a log y axis."""


class WandbReportError(RuntimeError):
    """The W&B Report could not be saved (no credentials, offline, unreachable, timed out)."""


def parse_wandb_path(path: str) -> tuple[str, str]:
    """``"ENTITY/PROJECT"`` -> ``(entity, project)``.

    Raises:
        ValueError: not exactly two non-empty parts.
    """
    parts = path.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"expected ENTITY/PROJECT, got {path!r}")
    return parts[0], parts[1]


def wandb_host() -> str:
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_HOST


def credentials_source() -> str | None:
    """Where W&B credentials would come from (``"WANDB_API_KEY"``, ``"netrc ~/.netrc"``), or None.

    Reads the environment and the netrc file only: no network, no wandb import, never the key itself.
    """
    if os.environ.get("WANDB_API_KEY"):
        return "WANDB_API_KEY"
    if os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return "WANDB_IDENTITY_TOKEN_FILE"
    path = Path(os.environ.get("NETRC") or Path("~/.netrc").expanduser())
    host = urlsplit(wandb_host()).netloc
    try:
        found = netrc.netrc(path).authenticators(host) if path.is_file() else None
    except (netrc.NetrcParseError, OSError):
        found = None
    return f"netrc {path}" if found and found[2] else None


def check_online(timeout: float = 5.0) -> str:
    """Fail fast unless saving can work: credentials present, not offline, host reachable.

    Returns:
        The credentials' source.

    Raises:
        WandbReportError: with what is missing and what to do instead.
    """
    source = credentials_source()
    if source is None:
        raise WandbReportError(
            "no W&B credentials: set WANDB_API_KEY or run `wandb login` (netrc) to save a W&B Report; "
            "without network use --spec-out FILE to write the report spec instead")
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("offline", "disabled", "dryrun"):
        raise WandbReportError(
            f"W&B is in {mode} mode (WANDB_MODE={mode}): a report cannot be saved offline; "
            "unset WANDB_MODE, or use --spec-out FILE to write the report spec instead")
    url = urlsplit(wandb_host())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise WandbReportError(
            f"cannot reach {url.hostname}:{port} ({err}); use --spec-out FILE to write the report spec "
            "offline") from err
    return source


# ----------------------------------------------------------------------------- build


def reports_api():
    """``wandb_workspaces.reports.v2``, or a :class:`WandbReportError` saying which extra to install
    (the package is optional: only W&B Reports need it)."""
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError as err:
        raise WandbReportError(
            "a W&B Report needs the 'wandb-workspaces' package: pip install 'shiftkit[report]' "
            "(the Markdown report needs nothing more)"
        ) from err
    return wr


def build_wandb_report(
    outcomes: Sequence[ClaimOutcome],
    cohorts: dict[str, Cohort],
    entity: str,
    project: str,
    *,
    title: str,
    description: str = "",
    stats: Sequence[str] = ("kl_gauss",),
    figures_run: str | None = None,
    figures_url: str | None = None,
    resolve_projects: bool = False,
):
    """The W&B Report object: a claims-table block, then per claim its verdict and a panel grid of
    line plots (accuracy; each monitored site's ``stats``; C6 grad-ICS and C7 landscape series), and
    the figures (a media panel over the figures run, and image blocks when ``figures_url`` is given).

    Args:
        outcomes: the evaluated claims (``ReportResult.outcomes``).
        cohorts: the runs by recipe (for site and layer names).
        entity, project: where the runs and the report live (the entity is always explicit).
        stats: the shift statistics to plot per site.
        figures_run: display name of the run holding the figures as media (see
            :func:`save_wandb_report`); None: no media panels.
        figures_url: base URL where the PNGs are served (e.g. the repository's raw URL of the
            report directory): adds an image block per figure.
        resolve_projects: give the run sets their project (a network lookup when the spec is
            built, so only when saving).
    """
    wr = reports_api()

    def runset(name: str, filters: str) -> Any:
        return wr.Runset(entity=entity, project=project if resolve_projects else "", name=name,
                         filters=filters, groupby=["config.variant"])  # fmt: skip

    blocks: list[Any] = [wr.H1(title)]
    if description:
        blocks.append(wr.P(description))
    blocks += [wr.H2("Claims"), wr.MarkdownBlock(text=claims_table(list(outcomes)))]
    for o in outcomes:
        if o.status == NOT_RUN:
            continue
        c = o.claim
        blocks.append(wr.H2(f"{c.id} — {c.title}"))
        lines = [f"**Reproduced: {o.status}**" + (f" (only {o.min_seeds} seeds)" if o.few_seeds else ""), ""]
        lines += [f"- {m}" for m in o.measured]
        blocks.append(wr.MarkdownBlock(text="\n".join(lines)))
        cohort = cohorts.get(c.recipe)
        if cohort is not None:
            panels = line_plots(wr, c.id, cohort, stats)
            blocks.append(wr.PanelGrid(runsets=[runset(c.recipe, f"Config('recipe') = '{c.recipe}'")], panels=panels))
        blocks += figure_blocks(wr, o.figures, figures_run, figures_url, runset)
    return wr.Report(project=project, entity=entity, title=title[:128], description=description, blocks=blocks)


def line_plots(wr, claim_id: str, cohort: Cohort, stats: Sequence[str]) -> list:
    """Accuracy, then one line plot per (monitored site, stat) in network order, then the claim's
    own series (C6: grad-ICS ``l2`` and ``cos`` per layer; C7: the landscape probes)."""
    panels = [wr.LinePlot(title="held-out accuracy", x=GLOBAL_STEP, y=[VAL_ACC], groupby_aggfunc="mean",
                          groupby_rangefunc="stddev", title_x="step")]  # fmt: skip
    for site in site_order(r.history for r in cohort.runs):
        for stat in stats:
            panels.append(wr.LinePlot(title=f"{site}: {stat}", x=GLOBAL_STEP, y=[shift_key(site, stat)],
                                      log_y=stat in LOG_STATS or None, groupby_aggfunc="mean",
                                      groupby_rangefunc="stddev", title_x="step"))  # fmt: skip
    if claim_id == "C6":
        layers = dict.fromkeys(layer for r in cohort.runs for layer, _ in metric_columns(r, parse_grad_ics_key))
        for layer in layers:
            for stat in ("l2", "cos"):
                panels.append(wr.LinePlot(title=f"grad-ICS {layer}: {stat}", x=GLOBAL_STEP,
                                          y=[grad_ics_key(layer, stat)], groupby_aggfunc="mean",
                                          groupby_rangefunc="stddev", title_x="step"))  # fmt: skip
    if claim_id == "C7":
        for key in map(landscape_key, ("loss_range", "grad_pred_max", "grad_pred_min", "beta_smooth")):
            panels.append(wr.LinePlot(title=key, x=GLOBAL_STEP, y=[key], log_y=True, groupby_aggfunc="mean",
                                      groupby_rangefunc="stddev", title_x="step"))  # fmt: skip
    return panels


def figure_blocks(wr, figures: Sequence[Figure], figures_run: str | None, figures_url: str | None, runset) -> list:
    blocks: list[Any] = []
    if figures and figures_run:
        keys = [MEDIA_PREFIX + Path(f.file).stem for f in figures]
        flt = f"Metric('JobType') = '{FIGURES_JOB_TYPE}' and Metric('Name') = '{figures_run}'"
        blocks.append(wr.PanelGrid(runsets=[runset("figures", flt)],
                                   panels=[wr.MediaBrowser(title="figures", media_keys=keys, num_columns=1)]))  # fmt: skip
    for f in figures:
        if figures_url:
            blocks.append(wr.Image(url=f"{figures_url.rstrip('/')}/{f.file}", caption=f.caption))
        else:
            blocks.append(wr.MarkdownBlock(text=f"*{f.file}*: {f.caption}"))
    return blocks


def report_spec(report) -> dict:
    """The report as W&B stores it (``ReportViewspec``), as a JSON-able dict; no network."""
    return report._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


def write_report_spec(report, path: str | os.PathLike) -> Path:
    from shiftkit.records.atomic import atomic_write_bytes

    return atomic_write_bytes(Path(path), (json.dumps(report_spec(report), indent=2) + "\n").encode("utf-8"))


# ----------------------------------------------------------------------------- save


def save_wandb_report(report, *, draft: bool = False, timeout: float = 60.0,
                      figures: Sequence[tuple[str, Path]] = (), figures_run: str | None = None) -> str:  # fmt: skip
    """Upload the figures (as media of a ``job_type="report"`` run) and save the report; return its URL.

    Everything happens under ``timeout`` seconds; credentials are checked first (:func:`check_online`).

    Raises:
        WandbReportError: no credentials, offline mode, host unreachable, the save failed or timed out.
    """
    check_online(timeout=min(5.0, timeout))
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            if figures and figures_run:
                import wandb

                run = wandb.init(entity=report.entity, project=report.project, name=figures_run,
                                 job_type=FIGURES_JOB_TYPE, settings=wandb.Settings(init_timeout=timeout))  # fmt: skip
                run.log({MEDIA_PREFIX + Path(name).stem: wandb.Image(str(path)) for name, path in figures})
                run.finish()
            report.save(draft=draft)
            outcome["url"] = report.url
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=work, name="wandb-report-save", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise WandbReportError(f"saving the W&B Report timed out after {timeout:g} s; "
                               "use --spec-out FILE to write the spec offline")  # fmt: skip
    if "error" in outcome:
        err = outcome["error"]
        raise WandbReportError(f"saving the W&B Report failed: {type(err).__name__}: {err}") from err
    return outcome["url"]
