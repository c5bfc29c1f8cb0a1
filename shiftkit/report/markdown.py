"""The report's README.md: the claims table first, then a section per claim, the rules, the data."""

from __future__ import annotations

from shiftkit.report.claims.base import NOT_RUN, ClaimOutcome, Figure, mark
from shiftkit.report.summary import MIN_SEEDS

TABLE_HEADER = ("Claim", "Paper", "Our setup", "Measured (mean ± sd over seeds, n seeds; effect [95% interval])",
                "Reproduced")


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, newlines as <br>)."""
    return text.replace("|", "\\|").replace("\n", "<br>")


def status_cell(o: ClaimOutcome) -> str:
    """``**yes**``...; with fewer than MIN_SEEDS seeds it says so; an amended rule's verdict
    follows the pre-registered one."""
    if o.status == NOT_RUN:
        return "not run"
    text = f"**{o.status}**"
    if o.few_seeds:
        text += f" ⚠ n={o.min_seeds} < {MIN_SEEDS} seeds"
    for i, (_, amended) in enumerate(o.amended, start=1):
        text += f" (pre-registered); amended rule {i}: **{amended.status}**"
    return text


def claims_table(outcomes: list[ClaimOutcome]) -> str:
    if not outcomes:
        return "No claim of the registry has runs in these records (see `--claims`)."
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    for o in outcomes:
        c = o.claim
        claim = f"**{c.id}** {c.title} ({c.source})"
        if o.status == NOT_RUN:
            measured, setup = f"not run: no runs of recipe `{c.recipe}`", "—"
        else:
            measured = "<br>".join(cell(m) for m in o.measured) or cell("; ".join(o.notes)) or "—"
            setup = o.setup
        lines.append("| " + " | ".join([cell(claim), cell(c.paper), cell(setup), measured, status_cell(o)]) + " |")
    return "\n".join(lines)


def figure_md(fig: Figure) -> str:
    return f"![{fig.file.rsplit('.', 1)[0]}]({fig.file})\n\n*{fig.caption}*"


def claim_section(o: ClaimOutcome, recipe_figures: list[Figure]) -> str:
    c = o.claim
    parts = [f"## {c.id} — {c.title}", "",
             f"**Claim** ({c.source}). {c.statement}", "",
             f"**Paper's number.** {c.paper}", ""]  # fmt: skip
    if o.status == NOT_RUN:
        parts += [f"**Not run**: these records hold no runs of recipe `{c.recipe}`. Produce them with "
                  f"`shiftkit sweep recipes/{c.recipe}.yaml --out runs/{c.recipe}`.", ""]  # fmt: skip
        return "\n".join(parts)
    parts += [f"**Our setup** (recipe `{c.recipe}`). {o.setup}", "",
              f"**Reproduced: {o.status}**" + (f" — ⚠ only {o.min_seeds} seed(s) in some group, fewer than "
                                               f"{MIN_SEEDS}: too few to judge." if o.few_seeds else "."), ""]  # fmt: skip
    parts += [c.prereg.text(), ""]
    if o.checks:
        parts += [f"- {mark(ch.passed)} {ch.name}" + (f" ({ch.detail})" if ch.detail else "") for ch in o.checks]
        parts.append("")
    for i, (amendment, amended) in enumerate(o.amended, start=1):
        parts += [f"**Amended rule {i}: {amended.status}** — found after the runs: {amendment.reason} "
                  "(the pre-registered verdict above stands beside it).", ""]  # fmt: skip
        parts += [f"- {mark(ch.passed)} {ch.name}" + (f" ({ch.detail})" if ch.detail else "") for ch in amended.checks]
        parts.append("")
    if o.measured:
        parts += ["Measured:", ""] + [f"- {m}" for m in o.measured] + [""]
    if o.details:
        parts += [o.details, ""]
    for note in o.notes:
        parts += [f"> {note}", ""]
    for fig in o.figures + recipe_figures:
        parts += [figure_md(fig), ""]
    return "\n".join(parts)


def rules_section(outcomes: list[ClaimOutcome]) -> str:
    if not outcomes:
        return ""
    parts = ["## Decision rules", "",
             "Every claim is decided by the rule below, applied to the records by "
             "`shiftkit.report.claims` (each rule is the docstring of the module that applies it, fixed "
             "in the commit it names before the runs that decide it). An *effect* is the difference or "
             "ratio of two groups' means over seeds with a 95% percentile-bootstrap interval (10,000 "
             "resamples of each group, fixed generator seed: `shiftkit.report.effects`); \"clearly\" "
             "means the interval excludes no effect. With 5 seeds a percentile bootstrap interval is "
             "somewhat too narrow (its coverage is below 95%), so an interval that only just excludes no "
             "effect is weak evidence. **yes**: every check passed; **partly**: some did; **no**: none "
             f"did; fewer than {MIN_SEEDS} seeds in a compared group is flagged in the table.", ""]  # fmt: skip
    for o in outcomes:
        parts += [f"### {o.claim.id} — {o.claim.title}", "", o.claim.prereg.text(), "", o.claim.rule, ""]
        for i, (amendment, _) in enumerate(o.amended, start=1):
            parts += [f"**Amended rule {i}** (after the runs; {amendment.reason}):", "", amendment.rule, ""]
    return "\n".join(parts)
