"""Shared fixtures: one emulator for the session (the in-process one of d365.Emulator), and
connections to it."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

import pytest

import d365

# Tests must not open a browser or read the developer's stored sign-ins and metadata cache.
os.environ["D365_TOKEN_KEY"] = "ZDM2NS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE="
os.environ["D365_CONFIG_DIR"] = tempfile.mkdtemp(prefix="d365-pytest-config-")


@pytest.fixture(scope="session")
def emulator() -> Iterator[d365.Emulator]:
    with d365.Emulator(rows=500) as emu:
        yield emu


@pytest.fixture
def conn(emulator: d365.Emulator) -> Iterator[d365.Connection]:
    with d365.connect(emulator.connection_string) as c:
        yield c


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (for child processes)."""
    return sys.executable
