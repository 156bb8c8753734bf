"""Write a backtest's files: scores.csv, summary.json, fits.csv, folds.csv, reliability.png."""

from __future__ import annotations

from pathlib import Path

from neutrality_forecast.backtest.runner import BacktestResult
from neutrality_forecast.backtest.scoring import reliability_diagram
from neutrality_forecast.export.run import write_json

__all__ = ["write_backtest"]


def write_backtest(result: BacktestResult, folder: str | Path) -> list[Path]:
    """Write every backtest output into ``folder`` and return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [
        folder / "scores.csv", folder / "summary.json", folder / "fits.csv", folder / "folds.csv"
    ]  # fmt: skip
    result.scores.to_csv(paths[0], index=False)
    write_json(paths[1], result.summary)
    import pandas as pd

    pd.DataFrame(result.fits).to_csv(paths[2], index=False)
    result.folds.to_csv(paths[3], index=False)
    s = result.scores
    if len(s):
        curves = {
            f"{result.summary.get('procedure', 'hazard')} model": (s["p_mean"], s["occurred"]),
            "evidence-free": (s["p_mean_evidence_free"], s["occurred"]),
            "base rate": (s["p_mean_base_rate"], s["occurred"]),
        }
        paths.append(folder / "reliability.png")
        reliability_diagram(curves, paths[-1])
    return paths
