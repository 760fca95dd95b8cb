"""Processes: process groups started and ended one way, the ring of sessions taking turns, a
cluster's shape, local workers."""
