"""Test-only: a disk that fills up. `pytest -p tests.plugins.full_disk --full-disk-after N` makes
every write of fitbench's results fail with ENOSPC (No space left on device) after the first N,
as a filling disk would; the files already written stay as they were."""

from __future__ import annotations

import errno

from fitbench.plugin import durable


def pytest_addoption(parser):
    parser.getgroup("fitbench").addoption(
        "--full-disk-after", type=int, default=-1, metavar="N",
        help="(tests only) every results write after the first N fails with ENOSPC")


def pytest_configure(config):
    allowed = config.getoption("full_disk_after")
    if allowed < 0:
        return
    real = durable.write_atomically
    writes = [0]

    def filling(path, text, exclusive=False):
        writes[0] += 1
        if writes[0] > allowed:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text, exclusive)

    durable.write_atomically = filling
