"""Read ahead of the consumer on a thread, through a bounded queue (a film's decoder runs while the model
computes: PyAV, ONNX Runtime, torch and the numba join all release the GIL while they work)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], depth: int) -> Generator[T, None, None]:
    """Yield `items` in order, produced up to `depth` ahead by a thread. An exception of the producer is
    raised here, at its place in the order; closing the generator early stops and joins the thread."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((True, x)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put((False, e))
            return
        put((True, _END))

    thread = threading.Thread(target=produce, name="aiaic-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, x = q.get()
            if not ok:
                raise x
            if x is _END:
                return
            yield x
    finally:
        stop.set()
        thread.join()
