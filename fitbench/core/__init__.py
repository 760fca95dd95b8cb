"""The ground floor: what every other floor shares. The one record type, the run's own section,
the statistics, the gate's policy (thresholds) and the options declared once for pytest and the
command line. It imports nothing of fitbench's above it, nor TensorFlow, nor pytest."""
