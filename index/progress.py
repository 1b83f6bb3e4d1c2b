"""Progress bars for long steps, as `(done, total)` callbacks (the only tqdm user)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Called with (items done so far, total items).
ProgressCallback = Callable[[int, int], None]


@contextmanager
def progress_bar(
    description: str, unit: str = "it", quiet: bool = False
) -> Iterator[ProgressCallback]:
    """A bar on stderr, driven by the callback it yields; nothing is drawn when `quiet`."""
    from tqdm import tqdm

    with tqdm(total=0, desc=description, unit=unit, disable=quiet, file=sys.stderr) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update
