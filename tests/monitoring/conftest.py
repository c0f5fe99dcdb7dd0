"""Fixtures for monitoring tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitoring.hierarchy_support import Hierarchy, build_hierarchy


@pytest.fixture
async def hierarchy(tmp_path: Path) -> AsyncIterator[Hierarchy]:
    h = await build_hierarchy(tmp_path)
    yield h
    await h.close()
