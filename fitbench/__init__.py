"""fitbench: how fast, and how well, TensorFlow/Keras trains across hyperparameters and devices."""

__version__ = "0.1.0"
