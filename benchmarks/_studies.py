"""What the study scripts share: their two data sets and their common options."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import neutrality_forecast as nf

DATA_SETS = ("population", "shipped")


def study_case_set(name: str) -> nf.CaseSet:
    """The synthetic 60-case population (seed 1, 180 months) or the shipped case set."""
    if name == "shipped":
        return nf.load_case_set(nf.default_cases_dir())
    if name != "population":
        raise ValueError(f"unknown data set {name!r}; expected one of {DATA_SETS}")
    from neutrality_forecast.synthetic import synthetic_population

    folder = Path(tempfile.mkdtemp()) / "pop1"
    synthetic_population(n_cases=60, months=180, seed=1, folder=folder)
    return nf.load_case_set(folder)


def add_fit_options(ap: argparse.ArgumentParser, *, draws: int) -> None:
    """``--data``, ``--draws``, ``--tune`` and ``--seed`` of a study's fits (4 chains)."""
    ap.add_argument(
        "--data",
        nargs="+",
        choices=DATA_SETS,
        default=list(DATA_SETS),
        help="synthetic 60-case population (seed 1) and/or the shipped case set",
    )
    ap.add_argument("--draws", type=int, default=draws, help="draws per chain (4 chains)")
    ap.add_argument("--tune", type=int, default=1000, help="warm-up per chain")
    ap.add_argument("--seed", type=int, default=20160609, help="sampler seed")
