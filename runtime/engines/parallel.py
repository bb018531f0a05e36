"""Running the numpy engines on every core: worker threads (numpy releases the GIL), each with a
single-threaded BLAS so that the threads do not oversubscribe the cores."""
import os


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_single_threaded():
    """Chunks run in parallel threads (numpy releases the GIL), each with a single-threaded BLAS:
    on 2 cores this is about twice as fast as one thread with a 2-thread BLAS. Without
    threadpoolctl the BLAS thread count cannot be limited, and the threads would oversubscribe
    the cores: then run serially (None)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=1, user_api="blas")
