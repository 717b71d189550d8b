"""Batches made ahead, in a background thread, while the model trains on the current one.

Decoding is done once (the splits are held in memory as uint8 arrays); what is left per batch is
the augmentation (flips, colour, zoom-out and crops, resizing) and the stacking. NumPy and Pillow
release the interpreter's lock for most of that work, so a thread that prepares the next batch takes
it off the training step's critical path, without the memory and start-up cost of worker processes
(the 2-core machines multissd is tested on have no core to spare for one).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

__all__ = ["prefetch"]

_DONE = object()


def prefetch(batches: Iterable, depth: int = 2) -> Iterator:
    """The items of ``batches`` in order, each made by a background thread up to ``depth`` items
    ahead. An exception raised while making an item is raised here, in order; stopping early (a
    ``break``, Ctrl-C, an error in the consumer) stops the thread at its next item."""
    if depth < 1:
        yield from batches
        return
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((_DONE, None))
        except BaseException as error:  # handed to the consumer, raised there
            items.put((_DONE, error))

    worker = threading.Thread(target=produce, name="multissd-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let it see the stop and end
            try:
                items.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
