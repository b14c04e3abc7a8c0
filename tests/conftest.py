"""Shared fixtures: tiny task sizes and an isolated registry."""

from __future__ import annotations

import copy

import pytest

import memtasks
from memtasks.tasks.registration import registry


@pytest.fixture
def clean_registry():
    """Let a test register tasks freely; the registry is restored afterwards."""
    saved = copy.copy(registry)
    yield registry
    registry.clear()
    registry.update(saved)


@pytest.fixture(params=memtasks.SETTINGS)
def setting(request) -> str:
    """Each of the 16 grid setting ids."""
    return request.param
