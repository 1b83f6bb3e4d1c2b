"""What every `python -m ...` command of citeqa does around its own work: the offline switches,
argument parsing, logging, and turning citeqa errors and Ctrl-C into one `Error: ...` line on
stderr with exit status 1."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from index.errors import CiteqaError
from index.offline import enforce_offline

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
INTERRUPTED = "\nError: interrupted."


def run_command(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    command: Callable[[argparse.Namespace], int],
    *,
    interrupted: str = INTERRUPTED,
) -> int:
    """Parse `argv` with `parser` and run `command` on the result; its exit status, or 1 with the
    error's message (or `interrupted`) on stderr."""
    enforce_offline()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    try:
        return command(args)
    except CiteqaError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 1
