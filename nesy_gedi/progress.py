"""Progress bars (tqdm's), shown or not for the whole library: `Task.train(progress=False)` turns them off
for a notebook or a script that prints its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tqdm import tqdm

_shown = [True]


def bar(*args: Any, **kwargs: Any) -> tqdm:
    """A tqdm bar, disabled while `shown(False)` is in force."""
    return tqdm(*args, disable=not _shown[0], **kwargs)


@contextmanager
def shown(on: bool) -> Iterator[None]:
    """Bars on or off inside the block; as they were after it."""
    previous, _shown[0] = _shown[0], on
    try:
        yield
    finally:
        _shown[0] = previous
