"""Shared fixtures. Real clips come from ../shared/data (CI has it); tests needing it skip with a reason.

Tests marked `slow` (learning, multi-process, over ~20 s) are left out by `pytest -m "not slow"`; a test
that uses a really trained run (the `tiny_run` fixture below, or test_train's `ablation_run`) is marked
slow here, the rest by their decorator.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AIAIC_SHARED_DATA", ROOT.parent / "shared" / "data"))
# tests never download: aiaic-eval treats this like --offline (LPIPS weights are not fetched)
os.environ.setdefault("AIAIC_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test (with the reason) where the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (set AIAIC_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The shared tiny trained run (support.colorize_fixtures: baseline and the three stages), trained
    once per session; the colorize, eval and app tests load it."""
    from support.colorize_fixtures import shared_tiny_run

    return shared_tiny_run(tmp_path_factory)


TRAINED_RUN_FIXTURES = {"tiny_run", "ablation_run"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if TRAINED_RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
