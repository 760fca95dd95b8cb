"""This suite's own fixtures, beyond the fitbench plugin (which `pip install fitbench` registers):
the seed notebooks' datasets, MNIST and Fashion-MNIST, registered by name for the benchmarks in
benchmarks/ (fixtures/datasets.py), and their models (fixtures/models.py, imported by the
benchmark files). The plugin's `load_dataset` fixture loads each dataset once per session."""

from fixtures import datasets

datasets.register()
