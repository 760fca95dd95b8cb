"""Test-only: make training run out of memory at and above a batch size, as a GPU would.

`pytest -p tests.plugins.oom --oom-at-batch 80 ...` raises TensorFlow's ResourceExhaustedError
(what a GPU allocation failure raises) in the first epoch of every case whose global batch
size is at least 80, so that the handling of out-of-memory can be tested on a CPU.
"""

from __future__ import annotations

import tensorflow as tf

from fitbench.measure.runner import EpochRunner


def pytest_addoption(parser):
    parser.getgroup("fitbench").addoption("--oom-at-batch", type=int, default=0, metavar="N",
                                          help="(tests only) run out of memory at batch size N and above")


def pytest_configure(config):
    threshold = config.getoption("oom_at_batch")
    if threshold:
        first_epoch = EpochRunner.first_epoch

        def exhausted_first_epoch(self, data):
            if self.workload.batch_size >= threshold:
                raise tf.errors.ResourceExhaustedError(
                    None, None, f"OOM when allocating tensor with shape[{self.workload.batch_size},784]")
            return first_epoch(self, data)

        EpochRunner.first_epoch = exhausted_first_epoch
