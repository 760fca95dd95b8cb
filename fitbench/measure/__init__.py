"""Measuring: workloads and experiments as data, datasets, models, devices and their strategies,
the per-epoch runner, matmul peaks, memory, FLOPs and the hardware's counters."""
