"""A small process pool that always returns one result per task, with a per-task time limit.

`run_pool(fn, tasks, workers=N, time_limit=s, on_error=...)` runs `fn(task)` in N worker processes
started with the *spawn* method (no fork: PyAV, torch and numba state is never copied into a child)
and yields `(position, result)` pairs in completion order. A worker never raises out of the pool:

- `fn` raising an exception -> `on_error(task, "worker_error", "<Type>: <message>")`;
- a task running longer than `time_limit` seconds (a decoder hang) -> the worker is killed
  (SIGKILL) and replaced, `on_error(task, "timeout", ...)`;
- a worker process dying (a crash inside a C library) -> replaced, `on_error(task, "worker_crash", ...)`.

Tasks are handed out one at a time in the given order, so the order of dispatch is deterministic;
the order of completion is not (callers must not depend on it).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

START_METHOD = "spawn"


def _worker_main(conn: Connection, fn: Callable[[Any], Any]) -> None:
    """Worker loop: receive (position, task); send ('ok', position, result) or ('error', position, cls, msg)
    for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        pos, task = msg
        try:
            result = fn(task)
            conn.send(("ok", pos, result))
        except Exception as e:  # reported to the parent as a failure of this task, never swallowed
            tb = traceback.extract_tb(e.__traceback__)
            where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
            conn.send(("error", pos, "worker_error", f"{type(e).__name__}: {e}{where}"))


# Each worker is one process on one core: BLAS/OpenMP thread pools inside it would only oversubscribe.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class _Worker:
    def __init__(self, ctx: Any, fn: Callable[[Any], Any]):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True)
        saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
        os.environ.update({k: v for k, v in SINGLE_THREAD_ENV.items() if saved[k] is None})
        try:
            self.proc.start()  # a spawned child takes the environment as it is now
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
        child.close()
        self.ready = False
        self.task: tuple[int, Any] | None = None
        self.deadline = float("inf")
        self.dead = False

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        self.conn.close()


def run_pool(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    workers: int,
    time_limit: float,
    on_error: Callable[[T, str, str], R],
) -> Iterator[tuple[int, R]]:
    """Yield (position in `tasks`, result) for every task; see the module docstring.

    `fn` must be picklable (a module-level function or a functools.partial of one); so must the tasks
    and the results. `time_limit` is in seconds per task, measured from when the task is handed out.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if not tasks:
        return
    ctx = mp.get_context(START_METHOD)
    pending = deque(enumerate(tasks))
    pool = [_Worker(ctx, fn) for _ in range(min(workers, len(tasks)))]
    outstanding = len(tasks)
    start_failures = 0
    try:
        while outstanding:
            for w in pool:
                if w.ready and w.task is None and pending:
                    w.task = pending.popleft()
                    w.deadline = time.monotonic() + time_limit
                    w.conn.send(w.task)
            now = time.monotonic()
            timeout = max(0.0, min([w.deadline for w in pool if w.task is not None] + [now + 1.0]) - now)
            ready = wait([w.conn for w in pool if not w.dead], timeout=timeout)
            for i, w in enumerate(pool):
                if w.dead:
                    continue
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        w.kill()
                        code = w.proc.exitcode
                        if not w.ready:
                            start_failures += 1
                            if start_failures >= 3:
                                raise RuntimeError(
                                    f"worker processes die on start (exit code {code})"
                                ) from None
                        if w.task is not None:
                            pos, task = w.task
                            outstanding -= 1
                            yield (
                                pos,
                                on_error(task, "worker_crash", f"the worker process died (exit code {code})"),
                            )
                        if pending:
                            pool[i] = _Worker(ctx, fn)
                        else:
                            w.dead = True
                        continue
                    if msg[0] == "ready":
                        w.ready = True
                        continue
                    pos = msg[1]
                    assert w.task is not None and w.task[0] == pos
                    task = w.task[1]
                    w.task, w.deadline = None, float("inf")
                    outstanding -= 1
                    if msg[0] == "ok":
                        yield pos, msg[2]
                    else:
                        yield pos, on_error(task, msg[2], msg[3])
                elif w.task is not None and time.monotonic() > w.deadline:
                    pos, task = w.task
                    w.kill()
                    outstanding -= 1
                    yield (
                        pos,
                        on_error(task, "timeout", f"no result after {time_limit:g} s; the worker was killed"),
                    )
                    pool[i] = _Worker(ctx, fn)
    finally:
        for w in pool:
            if w.dead:
                continue
            if w.task is not None:
                w.kill()
            else:
                w.stop()
