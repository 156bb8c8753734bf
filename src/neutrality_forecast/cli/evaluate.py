"""Calibration: ``backtest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neutrality_forecast.casesets import CaseSetError, load_case_set
from neutrality_forecast.cli._common import (
    CasesOpt,
    ConfigOpt,
    HorizonsOpt,
    SamplerOpt,
    SeedOpt,
    _bad_input,
    _parse_horizons,
    _progress,
    app,
    console,
)
from neutrality_forecast.config import ConfigError, load_config
from neutrality_forecast.paths import default_cases_dir


@app.command()
def backtest(
    cases: CasesOpt = None,
    mode: Annotated[str, typer.Option(help="loco (leave-cluster-out), external or both.")] = "loco",
    holdout_cases: Annotated[
        Path | None,
        typer.Option("--holdout-cases", help="Case set to forecast in external mode."),
    ] = None,
    allow_overlap: Annotated[
        bool,
        typer.Option(
            "--allow-overlap",
            help="External mode: keep (and flag) holdout cases "
            "whose country and window overlap a training case instead of refusing.",
        ),
    ] = False,
    origin_step_months: Annotated[
        int, typer.Option("--origin-step-months", min=1, help="Months between origins.")
    ] = 6,
    horizons: HorizonsOpt = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("runs/backtest"),
    draws: Annotated[int, typer.Option(help="Draws per chain per fit.")] = 500,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain per fit.")] = 500,
    chains: Annotated[int, typer.Option(help="Chains per fit.")] = 4,
    seed: SeedOpt = None,
    sampler: SamplerOpt = None,
    config: ConfigOpt = None,
    placebo: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also run N placebo backtests with event dates permuted "
            "within each case (importance sampling only, no refits); report the real "
            "skill's percentile among them, each on the forecasts it scored.",
        ),
    ] = 0,
    max_refits: Annotated[
        int | None, typer.Option("--max-refits", help="Cap on fold refits (default: none).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler address: folds that need a refit run "
            "there (results identical to a local run with the same seeds).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Local processes for the clusters' importance-sampling passes (results "
            "identical to 1; each holds the posterior and a cluster's states).",
        ),
    ] = 1,
    replay: Annotated[
        str | None,
        typer.Option(
            help="Also replay this case's forecast history (default TKM if present; "
            "'none' to skip)."
        ),
    ] = None,
    replay_step_months: Annotated[int, typer.Option(min=1)] = 3,
    real_time: Annotated[
        bool,
        typer.Option(
            "--real-time",
            help="Replay in real time: every case cut at each origin "
            "and the model refitted there (what an analyst had at the time).",
        ),
    ] = False,
    procedure: Annotated[
        str,
        typer.Option(
            help="hazard (the deployed monthly hazard) or direct (the direct-horizon "
            "model of the model study, V7: leave-cluster-out only).",
        ),
    ] = "hazard",
    compare_with: Annotated[
        Path | None,
        typer.Option(
            "--compare-with",
            help="scores.csv of another backtest: also report this run's Brier skill "
            "against it on the forecasts both scored (cluster-bootstrap 90% CI).",
        ),
    ] = None,
) -> None:
    """Backtest the deployed procedure against the reference population.

    Leave-cluster-out: each cluster (cases.csv ``cluster``, default the country) is left
    out in turn and forecast at rolling origins from a posterior that knows the other
    clusters and its own history up to the origin. Writes scores, summary.json (skill vs the
    base rate and the evidence-free twin with cluster-bootstrap intervals, per family and
    horizon, placebo percentile), folds.csv (importance-sampling k-hat, refits) and plots.
    """
    from neutrality_forecast.backtest import (
        BacktestSettings,
        HoldoutOverlapError,
        case_replay,
        run_backtest,
        write_backtest,
        write_replay,
    )

    if mode not in ("loco", "external", "both"):
        raise typer.BadParameter("mode must be loco, external or both", param_hint="--mode")
    if procedure not in ("hazard", "direct"):
        raise typer.BadParameter("procedure must be hazard or direct", param_hint="--procedure")
    if procedure == "direct" and (mode != "loco" or placebo or real_time):
        raise typer.BadParameter(
            "the direct procedure runs leave-cluster-out only (no --placebo, --real-time)",
            param_hint="--procedure",
        )
    hz = _parse_horizons(horizons)
    try:
        cfg = load_config(model_file=config) if config else load_config()
        cs = load_case_set(cases or default_cases_dir())
        holdout = load_case_set(holdout_cases) if holdout_cases else None
    except (CaseSetError, ConfigError) as exc:
        raise _bad_input(exc) from None
    if mode in ("external", "both") and holdout is None:
        raise _bad_input(ValueError("--mode external needs --holdout-cases DIR"))
    settings = BacktestSettings(
        origin_step_months=origin_step_months,
        horizons=tuple(hz or cfg.model.forecast.horizons),
        draws=draws, tune=tune, chains=chains,
        seed=cfg.model.sampling.seed if seed is None else seed,
        sampler=sampler, max_refits=max_refits,
    )  # fmt: skip
    reference = None
    if compare_with is not None:
        import pandas as pd

        try:
            reference = pd.read_csv(compare_with, keep_default_na=False)
        except (OSError, pd.errors.ParserError) as exc:
            raise _bad_input(ValueError(f"{compare_with}: {exc}")) from None
        need = {"case_id", "outcome", "partner", "origin", "horizon", "occurred", "brier"}
        if missing := sorted(need - set(reference.columns)):
            raise _bad_input(ValueError(f"{compare_with}: not a backtest scores.csv "
                                        f"(missing columns {missing})"))  # fmt: skip
    try:
        if procedure == "direct":
            from neutrality_forecast.backtest.direct import run_direct_backtest

            result = run_direct_backtest(cs, cfg, settings=settings, progressbar=_progress())
            replay = "none"
        else:
            result = run_backtest(
                cs, cfg, mode=mode, holdout=holdout, settings=settings, placebo=placebo,
                allow_overlap=allow_overlap, scheduler=scheduler, progressbar=_progress(),
                workers=workers,
            )  # fmt: skip
    except HoldoutOverlapError as exc:
        raise _bad_input(exc) from None
    if reference is not None:
        from neutrality_forecast.backtest.summary import paired_skill

        result.summary["vs_reference"] = {
            "reference": str(compare_with),
            **paired_skill(result.scores, reference),
        }
    write_backtest(result, out)
    replay_case = replay or ("TKM" if "TKM" in cs.case_ids else None)
    if replay_case and replay_case.lower() == "none":
        replay_case = None
    if replay_case:
        rep = case_replay(cs, cfg, case_id=replay_case, step_months=replay_step_months,
                          horizons=hz, settings=settings, real_time=real_time)  # fmt: skip
        write_replay(rep, cs, out, case_id=replay_case)
    _print_summary(result.summary, mode, out)


@app.command()
def placebo(
    backtest_dir: Annotated[
        Path,
        typer.Argument(
            help="Output folder of a finished leave-cluster-out backtest "
            "(its scores.csv and summary.json are read)."
        ),
    ],
    cases: CasesOpt = None,
    config: ConfigOpt = None,
    runs: Annotated[int, typer.Option("--runs", "-n", min=1, help="Placebo runs.")] = 10,
    max_refits: Annotated[
        int, typer.Option("--max-refits", min=0, help="Fold refits per placebo run.")
    ] = 0,
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default BACKTEST_DIR/placebo).")
    ] = None,
) -> None:
    """Placebo runs for a finished backtest: is its skill more than coding levels give.

    Event dates are permuted within each case (levels and mix kept, timing destroyed),
    the model is refitted and every fold forecast by importance sampling with the
    backtest's own settings (origins, horizons, draws, seed, sampler, from its
    summary.json). Pass the same --cases and --config as the backtest. Writes
    placebo.json, placebo_runs.csv, placebo_fits.csv and placebo.png, updated after
    every run (``n`` of ``n_planned`` runs made).
    """
    import json

    import pandas as pd

    from neutrality_forecast.backtest import BacktestSettings
    from neutrality_forecast.backtest.placebo import run_placebo, write_placebo

    try:
        summary = json.loads((backtest_dir / "summary.json").read_text())
        scores = pd.read_csv(backtest_dir / "scores.csv", keep_default_na=False)
    except (OSError, ValueError) as exc:
        bad = ValueError(f"{backtest_dir}: not a backtest output folder ({exc})")
        raise _bad_input(bad) from None
    try:
        cfg = load_config(model_file=config) if config else load_config()
        cs = load_case_set(cases or default_cases_dir())
    except (CaseSetError, ConfigError) as exc:
        raise _bad_input(exc) from None
    if (
        summary.get("mode") not in ("loco", "both")
        or summary.get("procedure", "hazard") != "hazard"
    ):
        raise _bad_input(ValueError(f"{backtest_dir}: placebo runs need a leave-cluster-out "
                                    "backtest of the hazard procedure"))  # fmt: skip
    if (v := summary.get("model_version")) and v != cfg.model.model_version:
        raise _bad_input(
            ValueError(
                f"{backtest_dir}: backtest of {v}, config is "
                f"{cfg.model.model_version}: pass the backtest's --config"
            )
        )
    st = dict(summary.get("settings", {}))
    st["horizons"] = tuple(st.get("horizons", cfg.model.forecast.horizons))
    known = set(BacktestSettings.__dataclass_fields__)
    settings = BacktestSettings(**{k: v for k, v in st.items() if k in known})
    dest = out or backtest_dir / "placebo"

    def partial(d: dict, fits: list[dict]) -> None:  # results so far, after every run
        write_placebo({**d, "backtest": str(backtest_dir)}, fits, dest)
        console.print(f"placebo run {d['n']}/{runs}: skill vs evidence-free "
                      f"{d['skill_vs_evidence_free'][-1]:+.3f} (real on the same forecasts "
                      f"{d['real_skill_vs_evidence_free_paired'][-1]:+.3f})")  # fmt: skip

    try:
        result, fits = run_placebo(cs, cfg, scores, n=runs, settings=settings,
                                   max_refits=max_refits, progressbar=_progress(),
                                   on_run=partial)  # fmt: skip
    except ValueError as exc:
        raise _bad_input(ValueError(f"{backtest_dir / 'scores.csv'}: {exc}")) from None
    result["backtest"] = str(backtest_dir)
    write_placebo(result, fits, dest)
    console.print(
        f"real skill vs evidence-free {result['real_skill_vs_evidence_free']:+.3f}; above "
        f"{result['percentile_vs_evidence_free']:.0f}% of {runs} placebo runs (paired skills "
        f"{min(result['skill_vs_evidence_free']):+.3f} to "
        f"{max(result['skill_vs_evidence_free']):+.3f}); wrote {dest}"
    )


def _print_summary(s: dict, mode: str, out: Path) -> None:
    table = Table(
        title=f"Backtest ({mode}, {s.get('procedure', 'hazard')}), {s.get('seconds', 0):.0f} s"
    )
    cols = ("set", "forecasts", "events", "Brier", "skill vs base rate (90% CI)",
            "skill vs evidence-free (90% CI)")  # fmt: skip
    for col in cols:
        table.add_column(col)
    for tag in ("loco", "external"):
        part = s.get(tag, s if s.get("mode") == tag else None)
        if not part or "brier" not in part:
            continue
        ci = part.get("brier_skill_ci90", {})
        lo0, hi0 = ci.get("vs_base_rate", [float("nan")] * 2)
        lo1, hi1 = ci.get("vs_evidence_free", [float("nan")] * 2)
        table.add_row(
            tag, str(part["n_forecasts"]), str(part["n_events"]), f"{part['brier']:.4f}",
            f"{part['brier_skill']:+.3f} ({lo0:+.3f} to {hi0:+.3f})",
            f"{part['brier_skill_vs_evidence_free']:+.3f} ({lo1:+.3f} to {hi1:+.3f})",
        )  # fmt: skip
        if "placebo" in part:
            pl = part["placebo"]
            console.print(
                f"{tag}: real skill vs evidence-free is above "
                f"{pl['percentile_vs_evidence_free']:.0f}% of {pl['n']} placebo runs "
                "(event dates permuted within cases)"
            )
        if "folds" in part:
            f = part["folds"]
            console.print(f"{tag}: {f['n']} folds, {f['psis']} by importance sampling, "
                          f"{f['refit']} refitted, {f['dropped']} dropped")  # fmt: skip
    console.print(table)
    if ref := s.get("vs_reference"):
        if ref.get("n_forecasts"):
            lo, hi = ref["skill_ci90"]
            console.print(f"skill vs {ref['reference']} on {ref['n_forecasts']} shared forecasts: "
                          f"{ref['skill']:+.3f} ({lo:+.3f} to {hi:+.3f})")  # fmt: skip
        else:
            console.print(f"no forecasts shared with {ref['reference']}")
    console.print(f"fits passing the gate: {s['fits_passed_gate']}/{s['fits_total']}; wrote {out}")
