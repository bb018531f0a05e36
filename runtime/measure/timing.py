"""Measuring throughput on a shared, noisy machine."""
import time


def best_rate(fn, n_items, repeats=3):
    """Items per second of the fastest of `repeats` runs (the machine is shared and noisy)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_items / best
