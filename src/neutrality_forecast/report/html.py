"""A self-contained HTML report of a run folder.

``neutrality-forecast report RUN_DIR`` (and every ``forecast`` run) writes
``RUN_DIR/report.html``: one file, figures embedded as base64 PNG, no scripts and no remote
resources, so it can be mailed, archived or opened offline. Sections:

1. headline probabilities with 90 % intervals;
2. fan chart (probability by horizon);
3. probability over time with the coded events marked: the run's archived history
   (``history.csv`` in the run folder, or a frame passed in) when there is one, otherwise
   *in-sample replays* computed from the run's posterior at past as-of dates with the
   evidence known at each date (said so in the report);
4. attribution of the latest changes (``changes.csv``, written by scheduled re-forecasts;
   "no previous run" otherwise);
5. what drives each probability (``drivers.csv``);
6. joint and conditional tables;
7. diagnostics with pass/fail per check (``diagnostics.json``) and the rank/energy plots;
8. provenance (``forecast.json``).

Every input except ``forecast.csv`` is optional: a missing file or a fit that cannot be
loaded turns its section into a short notice instead of failing the report.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from neutrality_forecast.casesets import CaseSet
from neutrality_forecast.forecast.result import ABBREV
from neutrality_forecast.model.fitted import FittedModel
from neutrality_forecast.report.plots import LABELS, drivers_chart, fan_chart, history_chart
from neutrality_forecast.report.run_folder import (
    REPORT_NAME,
    RunFolder,
    load_run_fit,
    read_run_folder,
    replay_forecasts,
)

__all__ = [
    "RunFolder",
    "load_run_fit",
    "read_run_folder",
    "render_report",
    "replay_forecasts",
    "write_report",
]

log = logging.getLogger(__name__)


def _img(fig: plt.Figure, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _img_file(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _e(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return html.escape(str(value))


def _p(mean: float, lo: float, hi: float) -> str:
    return f"<b>{mean:.3f}</b> <span class=ci>({lo:.3f}&ndash;{hi:.3f})</span>"


def _table(frame: pd.DataFrame, *, floats: str = "{:.3f}", max_rows: int = 200) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for rec in frame.head(max_rows).itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, float) and not pd.isna(v):
                cells.append(f"<td class=num>{floats.format(v)}</td>")
            else:
                cells.append(f"<td>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f"<p class=note>{len(frame) - max_rows} more rows not shown.</p>"
        if len(frame) > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _outcome_label(outcome: str, partner: str) -> str:
    base = LABELS.get(outcome, outcome)
    return f"{base} ({partner})" if partner else base


def _notice(text: str) -> str:
    return f"<p class=notice>{text}</p>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>'


# ------------------------------------------------------------------------------ sections
def _headline(run: RunFolder, case_id: str) -> str:
    t = run.forecast[run.forecast["case_id"] == case_id].copy()
    t["partner"] = t["partner"].fillna("").astype(str)
    horizons = sorted(t["horizon_months"].unique())
    head = "".join(f"<th>within {h} months</th>" for h in horizons)
    rows = []
    if "headline" in t.columns:
        t = t.assign(_h=~t["headline"].astype(str).str.lower().isin(["true", "1"]))
        t = t.sort_values("_h", kind="stable")
    n_head = int((~t["_h"]).sum() / max(len(horizons), 1)) if "_h" in t else 0
    for i, ((outcome, partner), grp) in enumerate(t.groupby(["outcome", "partner"], sort=False)):
        if i == n_head and n_head:
            rows.append(f'<tr><th class=row colspan="{len(horizons) + 1}">other questions '
                        "(same rule for every case: RUS, CHN, USA and any regional partner)"
                        "</th></tr>")  # fmt: skip
        grp = grp.set_index("horizon_months")
        first = grp.iloc[0]
        label = _outcome_label(outcome, partner)
        last = first.get("last_occurred_on", "")
        if isinstance(last, str) and last:
            label += f" — new one? (last {last})"
        if (grp["status"] == "resolved").all():
            when = _e(first.get("occurred_on", ""))
            cells = f'<td colspan="{len(horizons)}" class=resolved>resolved: occurred {when}</td>'
        else:
            cells = "".join(
                f"<td>{_p(grp.loc[h, 'p_mean'], grp.loc[h, 'p_q05'], grp.loc[h, 'p_q95'])}</td>"
                if h in grp.index
                else "<td></td>"
                for h in horizons
            )
        rows.append(f"<tr><th class=row>{_e(label)}</th>{cells}</tr>")
    as_of = _e(t["as_of"].iloc[0])
    return (
        f"<p>Probability that each outcome occurs within the horizon after the as-of date "
        f"<b>{as_of}</b> (for accords and basing, which recur: that a <i>new</i> one is "
        "signed): posterior mean and 90&nbsp;% credible interval.</p>"
        f"<table class=headline><thead><tr><th></th>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _joint(run: RunFolder, case_id: str) -> str:
    parts = []
    j = run.joint
    if j is not None and len(j):
        j = j[j["case_id"].astype(str) == case_id]
        flags = [c for c in j.columns if c in ABBREV or "|" in c]

        def name(col: str) -> str:
            parts = col.split("|")
            if len(parts) == 1:
                return LABELS.get(col, col)
            return _outcome_label(parts[1], parts[2] if len(parts) > 2 else "")

        def label(rec: pd.Series) -> str:
            on = [name(c) for c in flags if not pd.isna(rec[c]) and int(rec[c])]
            return " + ".join(on) if on else "none of these"

        j = j.assign(combination=j.apply(label, axis=1))
        cells = j.assign(cell=[_p(*v) for v in j[["p_mean", "p_q05", "p_q95"]].to_numpy()])
        wide = cells.pivot(index="combination", columns="horizon_months", values="cell")
        order = j.drop_duplicates("combination")["combination"]
        wide = wide.reindex(order)
        head = "".join(f"<th>{h} m</th>" for h in wide.columns)
        body = "".join(
            f"<tr><th class=row>{_e(idx)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
            for idx, row in zip(wide.index, wide.to_numpy(), strict=True)
        )
        parts.append(
            "<h3>Joint distribution</h3><p>Probability that <i>exactly</i> these outcomes have "
            "occurred by the horizon (each column sums to 1).</p>"
            f"<table><thead><tr><th>combination</th>{head}</tr></thead><tbody>{body}</tbody>"
            "</table>"
        )
    else:
        parts.append(_notice("No joint table in this run folder (joint.csv missing)."))
    c = run.conditional
    if c is not None and len(c):
        c = c[c["case_id"].astype(str) == case_id]
        cells = c.assign(cell=[_p(*v) for v in c[["p_mean", "p_q05", "p_q95"]].to_numpy()])
        wide = cells.pivot(index="quantity", columns="horizon_months", values="cell")
        head = "".join(f"<th>{h} m</th>" for h in wide.columns)
        body = "".join(
            f"<tr><th class=row>{_e(idx)}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
            for idx, row in zip(wide.index, wide.to_numpy(), strict=True)
        )
        parts.append(
            "<h3>Conditional probabilities</h3>"
            f"<table><thead><tr><th>quantity</th>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    else:
        parts.append(_notice("No conditional table for this case (conditional.csv missing or "
                             "the case lacks the linked questions)."))  # fmt: skip
    return "".join(parts)


def _changes(run: RunFolder, case_id: str) -> str:
    ch = run.changes
    if ch is None:
        return _notice(
            "No previous run: this forecast has no predecessor to compare with, so there are "
            "no changes to attribute (scheduled re-forecasts write <code>changes.csv</code>)."
        )
    if "case_id" in ch.columns:
        ch = ch[ch["case_id"].astype(str) == case_id]
    if ch.empty:
        return _notice("No changes since the previous run for this case.")
    return (
        "<p>What moved the forecast since the previous run (from <code>changes.csv</code>).</p>"
        + _table(ch, floats="{:+.4f}")
    )


def _drivers(run: RunFolder, case_id: str) -> str:
    d = run.drivers
    if d is None or d.empty:
        return _notice("No drivers table in this run folder.")
    d = d[d["case_id"].astype(str) == case_id]
    if d.empty:
        return _notice("No open question for this case: nothing drives a hazard any more.")
    fig = drivers_chart(d)
    return (
        "<p>Contributions to the log-odds of each open question's monthly hazard in the month "
        "after the as-of date (posterior mean and 90&nbsp;% interval; evidence categories with "
        "no current evidence are omitted).</p>" + _img(fig, f"drivers of {case_id}")
    )


def _over_time(
    run: RunFolder,
    case_id: str,
    fitted: FittedModel | None,
    history: pd.DataFrame | None,
    replay: bool,
    why_no_fit: str,
) -> str:
    t = run.forecast[run.forecast["case_id"] == case_id]
    horizon = 12 if 12 in set(t["horizon_months"]) else int(t["horizon_months"].iloc[0])
    source = ""
    if history is not None and "case_id" in history.columns:
        history = history[history["case_id"].astype(str) == case_id]
    if history is not None and history["as_of"].nunique() >= 2:
        source = (
            "Archived forecasts of earlier runs (<code>history.csv</code>), one point per "
            "run and as-of date."
        )
    elif fitted is not None and replay:
        try:
            history = replay_forecasts(fitted, case_id, until=t["as_of"].iloc[0],
                                       horizons=[horizon])  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a report must not fail on one section
            log.warning("replay failed: %s", exc)
            return _notice(f"Probability over time unavailable: replay failed ({_e(exc)}).")
        source = (
            "<b>In-sample replays</b>: no archived history is available for this run, so these "
            "are forecasts recomputed from <i>this run's posterior</i> at past as-of dates, each "
            "using only the evidence coded up to that date. The parameters were estimated with "
            "hindsight (on all data the fit saw), so the curve shows how the evidence moved the "
            "forecast, not how well it would have predicted in real time."
        )
    else:
        reason = why_no_fit or "replays were switched off"
        return _notice(f"Probability over time unavailable: no history and {_e(reason)}.")
    events = fitted.case_set.events_of(case_id) if fitted is not None else None
    if events is not None:
        events = events[events["date"] <= pd.Timestamp(t["as_of"].iloc[0])]
    occurred: dict[tuple[str, str], list[str]] = {}
    if fitted is not None:
        occ = fitted.case_set.outcomes_of(case_id)
        for r in occ[occ["occurred"]].itertuples(index=False):
            key = (str(r.outcome), "" if pd.isna(r.partner) else str(r.partner))
            occurred.setdefault(key, []).append(pd.Timestamp(r.occurred_on).date().isoformat())
    head = t[t["headline"].astype(str).str.lower().isin(["true", "1"])] if "headline" in t else t
    panels = list(dict.fromkeys(
        zip(head["outcome"], head["partner"].fillna("").astype(str), strict=True)
    ))  # fmt: skip
    fig = history_chart(history, events, horizon=horizon, resolved=occurred, questions=panels,
                        title=f"{case_id}: P(within {horizon} months) by as-of date")  # fmt: skip
    n_ev = 0 if events is None else len(events)
    marks = (
        f" Ticks along the bottom mark the {n_ev} coded events (green: cooperative, red: "
        "conflictual PLOVER types); dashed lines mark occurrences (for accords and basing "
        "every one: the last occurrence is on the timeline)."
        if n_ev
        else ""
    )
    return f"<p>{source}{marks}</p>" + _img(fig, f"{case_id} probability over time")


def _diagnostics(run: RunFolder) -> str:
    d = run.diagnostics or run.meta.get("diagnostics")
    if not d:
        return _notice("No diagnostics in this run folder (diagnostics.json missing).")
    th = d.get("thresholds", {}) or {}
    checks = [
        ("rhat", "max rank-normalised R-hat", d.get("rhat_max"), "<=", th.get("rhat_max")),
        ("ess_bulk", "min bulk ESS", d.get("ess_bulk_min"), ">=", th.get("ess_bulk_min")),
        ("ess_tail", "min tail ESS", d.get("ess_tail_min"), ">=", th.get("ess_tail_min")),
        ("divergences", "divergent transitions", d.get("divergences"), "<=",
         th.get("max_divergences")),
        ("bfmi", "min E-BFMI", d.get("bfmi_min"), ">=", th.get("bfmi_min")),
        ("treedepth", "share at max tree depth", d.get("treedepth_share"), "<=",
         th.get("max_treedepth_share")),
    ]  # fmt: skip
    failed = set(d.get("failed", []))
    rows = []
    for key, label, value, op, limit in checks:
        if value is None:
            continue
        ok = key not in failed
        badge = "<span class=pass>pass</span>" if ok else "<span class=fail>FAIL</span>"
        val = f"{value:.3f}" if isinstance(value, float) else _e(value)
        lim = "" if limit is None else f"{op} {limit}"
        rows.append(
            f"<tr><td>{label}</td><td class=num>{val}</td><td>{lim}</td><td>{badge}</td></tr>"
        )
    verdict = (
        "<p class=ok>Diagnostics gate <b>passed</b>.</p>"
        if d.get("passed")
        else "<p class=bad>Diagnostics gate <b>FAILED</b>: this run must not be used.</p>"
    )
    worst = d.get("worst") or {}
    extra = (
        f"<p class=note>Worst variables: {', '.join(f'{k} {_e(v)}' for k, v in worst.items())}. "
        f"{_e(d.get('n_chains', ''))} chains x {_e(d.get('n_draws', ''))} draws.</p>"
        if worst
        else ""
    )
    tries = d.get("attempts") or []
    if len(tries) > 1:
        earlier = "; ".join(
            f"{_e(a.get('divergences'))} divergences at target_accept {_e(a.get('target_accept'))}"
            for a in tries[:-1]
        )
        extra += (
            f"<p class=note>Sampled again with smaller steps (target_accept "
            f"{_e(tries[-1].get('target_accept'))}) after {earlier}; the table is the kept "
            "attempt.</p>"
        )
    imgs = "".join(
        _img_file(run.path / name, name) for name in ("rank.png", "energy.png")
        if (run.path / name).is_file()
    )  # fmt: skip
    return (
        verdict
        + "<table><thead><tr><th>check</th><th>value</th><th>threshold</th><th></th></tr></thead>"
        + f"<tbody>{''.join(rows)}</tbody></table>{extra}<div class=figs>{imgs}</div>"
    )


def _provenance(run: RunFolder) -> str:
    prov = run.provenance
    if not prov:
        return _notice("No provenance (forecast.json missing).")
    keys = [k for k in prov if k != "config"]
    rows = "".join(f"<tr><th class=row>{_e(k)}</th><td><code>{_e(prov[k])}</code></td></tr>"
                   for k in keys)  # fmt: skip
    cfg = json.dumps(prov.get("config", {}), indent=2, sort_keys=True)
    return (
        f"<table>{rows}</table><details><summary>Full configuration (JSON)</summary>"
        f"<pre>{html.escape(cfg)}</pre></details>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;
 max-width:1080px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.1em} h2{border-bottom:2px solid #1b6ca8;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
thead th{background:#f2f5f8} th.row{background:#fafafa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.headline td{font-size:1.1em} .ci{color:#666;font-size:.85em}
.resolved{color:#555;font-style:italic}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
.figs img{max-width:49%}
.notice{background:#fff8e1;border-left:4px solid #f0b429;padding:.5em .8em}
.note{color:#666;font-size:.85em}
.pass{color:#fff;background:#2e7d32;padding:0 .5em;border-radius:3px}
.fail{color:#fff;background:#c62828;padding:0 .5em;border-radius:3px}
.ok{color:#2e7d32} .bad{color:#c62828;font-weight:600}
nav a{margin-right:1em} pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.8em}
.warn{background:#fdecea;border-left:4px solid #c62828;padding:.5em .8em}
"""


def render_report(
    run: RunFolder,
    *,
    fitted: FittedModel | None = None,
    history: pd.DataFrame | None = None,
    replay: bool = True,
    why_no_fit: str = "",
) -> str:
    """The report as one HTML string (see the module docstring for its sections)."""
    prov = run.provenance
    history = history if history is not None else run.history
    sections = []
    nav = []
    for case_id in run.case_ids:
        t = run.forecast[run.forecast["case_id"] == case_id]
        suffix = f" ({case_id})" if len(run.case_ids) > 1 else ""
        parts = [
            ("headline", "Headline probabilities", lambda c=case_id: _headline(run, c)),
            ("fan", "Fan chart", lambda t=t, c=case_id: _img(fan_chart(t), f"fan chart {c}")),
            ("time", "Probability over time",
             lambda c=case_id: _over_time(run, c, fitted, history, replay, why_no_fit)),
            ("changes", "Attribution of the latest changes", lambda c=case_id: _changes(run, c)),
            ("drivers", "What drives each probability", lambda c=case_id: _drivers(run, c)),
            ("joint", "Joint and conditional probabilities", lambda c=case_id: _joint(run, c)),
        ]  # fmt: skip
        for anchor, title, build in parts:
            try:
                body = build()
            except Exception as exc:  # noqa: BLE001 - one broken section must not kill the report
                log.warning("report section %s failed: %s", title, exc)
                body = _notice(f"Section unavailable: {_e(type(exc).__name__)}: {_e(exc)}")
            sections.append(_section(f"{anchor}-{case_id}", title + suffix, body))
            nav.append(f'<a href="#{anchor}-{case_id}">{html.escape(title + suffix)}</a>')
    sections.append(_section("diagnostics", "Diagnostics", _diagnostics(run)))
    sections.append(_section("provenance", "Provenance", _provenance(run)))
    nav += ['<a href="#diagnostics">Diagnostics</a>', '<a href="#provenance">Provenance</a>']
    passed = (run.diagnostics or run.meta.get("diagnostics") or {}).get("passed")
    warn = (
        "<p class=warn>The diagnostics gate did not pass: do not use these numbers.</p>"
        if passed is False
        else ""
    )
    cases = ", ".join(run.case_ids)
    as_of = ", ".join(dict.fromkeys(run.forecast["as_of"].astype(str)))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    fe = prov.get("future_evidence", "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(cases)} forecast, run {_e(prov.get("run_id", run.path.name))}</title>
<style>{_CSS}</style></head><body>
<h1>{_e(cases)} forecast as of {_e(as_of)}</h1>
<p class=note>Run <code>{_e(prov.get("run_id", run.path.name))}</code> &middot; model
{_e(prov.get("model_version", "?"))} &middot; package {_e(prov.get("package_version", "?"))}
&middot; future evidence: {_e(fe)} &middot; report generated {stamp}</p>
{warn}
<nav>{"".join(nav)}</nav>
{"".join(sections)}
<hr><p class=note>Curated public reporting, not official data: verify against primary sources
before operational use. Probabilities are conditional on the coded evidence being complete up
to the as-of date.</p>
</body></html>
"""


def write_report(
    run_dir: str | Path,
    *,
    fitted: FittedModel | None = None,
    cases: str | Path | CaseSet | None = None,
    history: pd.DataFrame | None = None,
    replay: bool = True,
    out: str | Path | None = None,
) -> Path:
    """Write the self-contained HTML report of a run folder and return its path.

    Parameters
    ----------
    run_dir : str or Path
        The run folder (must hold ``forecast.csv``).
    fitted : FittedModel, optional
        The run's fit; by default loaded from ``posterior.nc`` with :func:`load_run_fit`
        (only needed for the in-sample replays and the event marks).
    cases : str, Path or CaseSet, optional
        Case set to load the fit with (default: ``data_source`` in ``forecast.json``).
    history : DataFrame, optional
        Archived forecasts (``case_id, as_of, outcome, horizon_months, p_mean, p_q05,
        p_q95``) to plot over time instead of in-sample replays.
    replay : bool, keyword-only
        Compute in-sample replays when no history is available.
    out : str or Path, optional
        Destination (default ``RUN_DIR/report.html``).

    Raises
    ------
    FileNotFoundError
        ``run_dir`` is not a run folder.

    """
    run = read_run_folder(run_dir)
    why = ""
    if fitted is None and (replay or history is not None):
        try:
            fitted = load_run_fit(run.path, cases=cases)
        except Exception as exc:  # noqa: BLE001 - the report is still useful without the fit
            why = f"the fit could not be loaded: {exc}"
            log.info("report without fit: %s", why)
    text = render_report(run, fitted=fitted, history=history, replay=replay, why_no_fit=why)
    dest = Path(out) if out is not None else run.path / REPORT_NAME
    dest.write_text(text, encoding="utf-8")
    return dest
