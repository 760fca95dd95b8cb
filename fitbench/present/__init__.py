"""Presenting: every text fitbench prints (one formatter), live progress, and the report."""
