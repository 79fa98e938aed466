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


class _Pool:
    """The workers of one `run_pool` call: hands out tasks, turns each worker's event into a result."""

    def __init__(self, ctx: Any, fn: Callable[[Any], Any], size: int, time_limit: float,
                 on_error: Callable[[Any, str, str], Any]):  # fmt: skip
        self.ctx, self.fn, self.time_limit, self.on_error = ctx, fn, time_limit, on_error
        self.workers = [_Worker(ctx, fn) for _ in range(size)]
        self.start_failures = 0

    def hand_out(self, pending: deque) -> None:
        """Give the next pending task to every idle worker that has started."""
        for w in self.workers:
            if w.ready and w.task is None and pending:
                w.task = pending.popleft()
                w.deadline = time.monotonic() + self.time_limit
                w.conn.send(w.task)

    def wait(self) -> list[Any]:
        """The connections with a message, waiting at most until the nearest deadline (1 s at most)."""
        now = time.monotonic()
        nearest = min([w.deadline for w in self.workers if w.task is not None] + [now + 1.0])
        return wait([w.conn for w in self.workers if not w.dead], timeout=max(0.0, nearest - now))

    def step(self, i: int, ready: list[Any], pending: deque) -> tuple[int, Any] | None:
        """Handle worker i's event (a message, its death, its deadline); the finished task's result."""
        w = self.workers[i]
        if w.dead:
            return None
        if w.conn in ready:
            try:
                msg = w.conn.recv()
            except (EOFError, OSError):
                return self._lost(i, pending)
            if msg[0] == "ready":
                w.ready = True
                return None
            pos = msg[1]
            assert w.task is not None and w.task[0] == pos
            task = w.task[1]
            w.task, w.deadline = None, float("inf")
            return (pos, msg[2]) if msg[0] == "ok" else (pos, self.on_error(task, msg[2], msg[3]))
        if w.task is not None and time.monotonic() > w.deadline:
            pos, task = w.task
            w.kill()
            self.workers[i] = _Worker(self.ctx, self.fn)
            message = f"no result after {self.time_limit:g} s; the worker was killed"
            return pos, self.on_error(task, "timeout", message)
        return None

    def _lost(self, i: int, pending: deque) -> tuple[int, Any] | None:
        """Worker i died: replace it (while tasks remain); its task, if any, failed with worker_crash."""
        w = self.workers[i]
        w.kill()
        code = w.proc.exitcode
        if not w.ready:
            self.start_failures += 1
            if self.start_failures >= 3:
                raise RuntimeError(f"worker processes die on start (exit code {code})") from None
        if pending:
            self.workers[i] = _Worker(self.ctx, self.fn)
        else:
            w.dead = True
        if w.task is None:
            return None
        pos, task = w.task
        return pos, self.on_error(task, "worker_crash", f"the worker process died (exit code {code})")

    def close(self) -> None:
        for w in self.workers:
            if w.dead:
                continue
            if w.task is not None:
                w.kill()
            else:
                w.stop()


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
    pending = deque(enumerate(tasks))
    pool = _Pool(mp.get_context(START_METHOD), fn, min(workers, len(tasks)), time_limit, on_error)
    outstanding = len(tasks)
    try:
        while outstanding:
            pool.hand_out(pending)
            ready = pool.wait()
            for i in range(len(pool.workers)):
                result = pool.step(i, ready, pending)
                if result is not None:
                    outstanding -= 1
                    yield result
    finally:
        pool.close()
