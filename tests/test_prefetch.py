"""prefetch: order, errors where they happened, read-ahead, and a clean stop."""
from __future__ import annotations

import threading

import pytest

from vidrestore.io.prefetch import prefetch


def test_items_come_in_order():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))
    assert list(prefetch([])) == []


def test_an_error_in_the_source_is_raised_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("bad frame")

    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for item in prefetch(source()):
            got.append(item)
    assert got == [1, 2]


def test_the_next_item_is_produced_while_the_consumer_works():
    produced = [threading.Event() for _ in range(3)]

    def source():
        for i in range(3):
            produced[i].set()
            yield i

    items = prefetch(source(), depth=1)
    assert next(items) == 0
    assert produced[1].wait(5)  # made while item 0 is being "solved"
    assert list(items) == [1, 2]


def test_stopping_early_closes_the_source_in_its_thread_and_ends_the_thread():
    closed = []

    def source():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.append(threading.current_thread().name)

    items = prefetch(source(), depth=2)
    assert next(items) == 0
    items.close()
    assert closed == ["vidrestore-prefetch"]
    assert not any(t.name == "vidrestore-prefetch" for t in threading.enumerate())
