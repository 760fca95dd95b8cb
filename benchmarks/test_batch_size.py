"""Batch size vs test accuracy and time per epoch: Fashion-MNIST MLP trained with SGD.

From ../shared/seeds/000 ("Efecto del batch size ... GPU vs TPU"): Flatten -> Dense(300, relu)
-> Dense(100, relu) -> Dense(10, softmax); SGD with Keras defaults; the first 5,000 training
images are the validation set, the other 55,000 the training set; 5 epochs. The notebook's GPU
run reached test accuracy 0.8513, 0.8229, 0.8218, 0.8067, 0.7736 for batch sizes 32..512.
"""

from fitbench import Experiment, Plot, Schedule, Workload
from fixtures import models

BATCH_SIZES = [32, 64, 128, 256, 512]

WORKLOAD = Workload(
    name="fashion-mlp-batch-size",
    dataset="fashion_mnist",
    model=models.mlp,
    model_args={"units": (300, 100)},
    optimizer="sgd",
    validation=5000,
    validation_at="start",
    schedules={
        "full": Schedule(epochs=5),
        "default": Schedule(epochs=5),  # the full schedule: about a minute on a 2-core CPU
        # Many short epochs: 11 timed rounds give the regression gate something to test.
        "smoke": Schedule(
            epochs=12, train_samples=5_000, validation_samples=2_000, test_samples=2_000,
            bound="smoke: first 5,000 training images, 12 epochs",
        ),
    },
)

CASES = {f"batch_size-{b}": b for b in BATCH_SIZES}

EXPERIMENT = Experiment(
    title="Fashion-MNIST MLP: batch size",
    workload=WORKLOAD,
    grid={case: {"batch_size": b} for case, b in CASES.items()},
    split="test",
    targets={  # minimum test accuracy per profile and case
        "full": {"batch_size-32": 0.83, "batch_size-64": 0.82, "batch_size-128": 0.80, "batch_size-256": 0.78,
                 "batch_size-512": 0.74},
        "default": {"batch_size-32": 0.83, "batch_size-64": 0.82, "batch_size-128": 0.80, "batch_size-256": 0.78,
                    "batch_size-512": 0.74},
        # reached 0.835, 0.805, 0.769, 0.707, 0.660 (12 epochs)
        "smoke": {"batch_size-32": 0.75, "batch_size-64": 0.70, "batch_size-128": 0.65, "batch_size-256": 0.60,
                  "batch_size-512": 0.55},
    },
    plots=(Plot("batch_size", "Fashion-MNIST MLP", "batch size (samples, log scale)", CASES, log_x=True),),
)


def test_batch_size(train, case):
    result = train(case.workload)
    result.assert_target(case.split, case.threshold)
