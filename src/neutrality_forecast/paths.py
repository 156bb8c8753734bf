"""Where the shipped configuration and case set live (repo checkout or installed wheel)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["default_cases_dir", "default_config_dir"]

_PKG = Path(__file__).resolve().parent
_REPO = _PKG.parent.parent


def default_config_dir() -> Path:
    """The ``models/`` folder holding ``evidence.toml`` and ``model.toml``."""
    repo = _REPO / "models"
    return repo if (repo / "model.toml").is_file() else _PKG / "_models"


def default_cases_dir() -> Path:
    """The shipped case set ``data/cases``."""
    repo = _REPO / "data" / "cases"
    return repo if (repo / "cases.csv").is_file() else _PKG / "_data" / "cases"
