"""Shared fixtures. Every test gets its own data directory, so nothing leaks between tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUEE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    yield
