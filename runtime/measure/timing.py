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


def ort_session_options():
    """onnxruntime with its default thread pool, but without busy-waiting threads that would keep
    spinning after a run and steal the cores from whatever is measured next in this process."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so
