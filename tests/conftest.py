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
