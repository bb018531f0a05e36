"""Running the numpy engines on every core: worker threads (numpy releases the GIL), each with a
single-threaded BLAS so that the threads do not oversubscribe the cores."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

_pool = None
_pool_lock = threading.Lock()
_THREAD_PREFIX = "numpy-engine"


def _forget_pool_in_child():
    """A forked child inherits the pool object but none of its threads (work submitted there would
    never run), and maybe a lock held by a thread that does not exist there: start afresh."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


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


def shared_pool():
    """The process's one pool of default_workers() threads, created on first use. A pool per call
    would start new threads on every call, and a new thread can cost the process another malloc
    arena: RSS that creeps up over a long run (a 1,000,000-image soak grew 6 %)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(default_workers(), thread_name_prefix=_THREAD_PREFIX)
        return _pool


def run_spread(fn, items, workers):
    """fn(item) for every item, on at most `workers` threads of the shared pool (item k on
    worker k % workers); re-raises a worker's exception. Called from one of the pool's own
    threads it runs serially (waiting there on the pool could wait for itself)."""
    items = list(items)
    if threading.current_thread().name.startswith(_THREAD_PREFIX):
        for item in items:
            fn(item)
        return
    groups = [items[k::workers] for k in range(min(workers, len(items)))]

    def run_group(group):
        for item in group:
            fn(item)
    for f in [shared_pool().submit(run_group, g) for g in groups]:
        f.result()
