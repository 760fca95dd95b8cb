"""Comparing: the one record, the run's section, statistics, thresholds, the gate, runs read
back, scaling, and change points across history."""
