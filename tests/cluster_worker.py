"""One process of the parity test (tests/test_cluster.py): trains the tiny workload with the
project's runner, as a cluster worker when TF_CONFIG is set, else alone; the chief (or the lone
process) writes each epoch's loss and accuracy to OUT.json.

    python -m tests.cluster_worker DATA_DIR GLOBAL_BATCH STEPS_PER_EXECUTION OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fitbench.measure import datasets, devices, runner
from fitbench.measure.workloads import Schedule, Variant
from fitbench.processes import cluster
from tests.helpers import TINY, RecordingBenchmark


def main(data_dir: str, batch: str, steps_per_execution: str, out: str) -> None:
    found = cluster.detect()
    devices.configure(cluster=found)
    device = devices.resolve("cpu")
    workload = TINY.but(batch_size=int(batch), variant=Variant(steps_per_execution=int(steps_per_execution)),
                        schedules={"default": Schedule(epochs=4, train_samples=1050, test_samples=500)})
    dataset = datasets.load("fashion_mnist", Path(data_dir), allow_download=False)
    record = runner.train(workload, "default", device, dataset, RecordingBenchmark())
    if found is None or found.is_chief:
        Path(out).write_text(json.dumps({
            "measurement": {"workers": record.measurement.workers, "replicas": record.measurement.replicas,
                            "global_batch": record.measurement.global_batch,
                            "per_replica_batch": record.measurement.per_replica_batch},
            "loss": [epoch.loss for epoch in record.epochs],
            "accuracy": [epoch.metric for epoch in record.epochs],
            "val_loss": [epoch.val_loss for epoch in record.epochs],
            "test_accuracy": record.test_metric,
        }))


if __name__ == "__main__":
    main(*sys.argv[1:])
