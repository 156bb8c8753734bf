"""Run ``neutrality-forecast`` in a subprocess with a fast mock fit and optional hangs.

Used by the reliability tests (kill -9, concurrent runs). Not a test module itself.

Environment:

* ``NF_TEST_HANG=fit|publish``: before the fit / just before ``latest`` is switched, write
  ``$NF_TEST_MARKER`` (with this pid) and sleep ``NF_TEST_SLEEP`` seconds (default 120).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pymc as pm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.archive_helpers import fast_mocks  # noqa: E402
from tests.helpers import mock_with_stats  # noqa: E402

HANG = os.environ.get("NF_TEST_HANG", "")
MARKER = os.environ.get("NF_TEST_MARKER", "")
SLEEP = float(os.environ.get("NF_TEST_SLEEP", "120"))


def _hang(stage: str) -> None:
    if HANG == stage:
        if MARKER:
            Path(MARKER).write_text(str(os.getpid()))
        time.sleep(SLEEP)


def _sample(*args, **kwargs):
    _hang("fit")
    return mock_with_stats(*args, **kwargs)


def main() -> None:
    fast_mocks(setattr)
    pm.sample = _sample
    from neutrality_forecast.archive.store import Archive

    switch = Archive.switch_latest

    def slow_switch(self, run_id):
        _hang("publish")
        return switch(self, run_id)

    Archive.switch_latest = slow_switch
    from neutrality_forecast.cli import app

    app(sys.argv[1:], prog_name="neutrality-forecast")


if __name__ == "__main__":
    main()
