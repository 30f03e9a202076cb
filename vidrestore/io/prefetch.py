"""Read ahead in a thread: the next window decodes while the current one is solved."""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield `items` in order while a thread produces up to `depth` of them ahead.

    An error in the producer is raised here, at the item where it happened. When
    the consumer stops early (close, an exception, Ctrl-C) the thread is told to
    stop, the source is closed in that thread (a generator can only be closed by
    the thread running it), and it is joined before this generator returns: the
    caller may then close whatever the source reads from.
    """
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                ahead.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put((item, None)):
                    break
            else:
                put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((_END, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="vidrestore-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ahead.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()
