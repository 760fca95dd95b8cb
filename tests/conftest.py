"""Fixtures for fitbench's own tests (their helpers: tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.datasets import DIRECTORY_NAMES
from tests.helpers import write_dataset

# A user's project, run by test_outside.py from a fresh environment, never by this session.
collect_ignore = ["outside"]


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> Path:
    """A data directory holding synthetic fashion-mnist/ and mnist/ (6,000 train, 1,000 test)."""
    root = tmp_path_factory.mktemp("data")
    for name in DIRECTORY_NAMES:
        write_dataset(root, name)
    return root


@pytest.fixture(scope="session")
def tiny_dataset(synthetic_data_dir):
    """The synthetic Fashion-MNIST, loaded through fitbench's own loader."""
    from fitbench.measure import datasets

    return datasets.load("fashion_mnist", synthetic_data_dir, allow_download=False)


@pytest.fixture(scope="session")
def cpu():
    """This machine's cpu device (its strategy), as the `device` fixture resolves it."""
    from fitbench.measure import devices

    return devices.resolve("cpu")
