from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("NF_NO_PROGRESS", "1")

TESTS = Path(__file__).parent
TINY = TESTS / "data" / "tiny"
REPO = TESTS.parent


@pytest.fixture
def tiny_dir() -> Path:
    return TINY


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "cases"
    shutil.copytree(TINY, dest)
    return dest


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with size and mtime: to prove nothing was written."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


@pytest.fixture
def mock_sampling(monkeypatch):
    """Prior draws instead of MCMC, for archive and re-forecast tests."""
    from tests.archive_helpers import fast_mocks

    fast_mocks(monkeypatch.setattr)


@pytest.fixture
def published(tiny_copy, tmp_path, mock_sampling):
    """A tiny case set and an archive holding one published run."""
    from tests.archive_helpers import invoke

    archive = tmp_path / "archive"
    result = invoke(tiny_copy, archive)
    assert result.exit_code == 0, result.output
    return tiny_copy, archive


@pytest.fixture
def mocked(monkeypatch):
    """``pm.sample`` replaced by mock sampling with sample stats (fast unit tests)."""
    import pymc as pm
    from tests.helpers import mock_with_stats

    monkeypatch.setattr(pm, "sample", mock_with_stats)
