"""The web chat's entry point: `python app.py [--host H] [--port P]` loads the chain from
`CITEQA_*` settings and serves the page, on 127.0.0.1 unless told otherwise.

The page itself lives in the `ui` package (`ui.render`: the HTML, `ui.page`: the page and its
handlers, `ui.serving`: how it is served safely); `create_demo(chain)` and `launch_demo` are
re-exported here as the public API.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sys
from collections.abc import Sequence

from qa import Settings, build_chain, enforce_offline
from qa.errors import CiteqaError
from ui.page import create_demo
from ui.serving import exposure_problem, launch_demo

__all__ = ["build_parser", "create_demo", "launch_demo", "limit_malloc_arenas", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description="Serve the citeqa chat.")
    parser.add_argument("--host", help="address to bind (CITEQA_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CITEQA_PORT, default 7860)")
    return parser


_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def limit_malloc_arenas() -> bool:
    """Have glibc keep one malloc arena for the whole process, unless `MALLOC_ARENA_MAX` says
    otherwise; True when set. The web server hands each answer's steps to whichever of its
    worker threads is free, and with glibc's default of an arena per thread (up to 8 per core)
    memory freed in one arena is not reused by the next: under eight users the app grew by
    15-20 MB a minute without end. With one arena it levels off, at the same answer rate
    (docs/decisions.md, "Memory under load"). Does nothing where the C library has no `mallopt`
    (not glibc)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, 1))


def main(argv: Sequence[str] | None = None) -> int:
    """Load the chain from `CITEQA_*` settings and serve the chat until interrupted."""
    limit_malloc_arenas()
    enforce_offline()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        overrides = {"host": args.host, "port": args.port}
        settings = settings.model_copy(update={k: v for k, v in overrides.items() if v})
        problem = exposure_problem(settings)
        if problem:
            print(f"Error: {problem}", file=sys.stderr)
            return 1
        # A model that fails its start-up check leaves the page running in extractive mode, with
        # a banner saying why.
        chain = build_chain(settings, degrade=True)
        chain.warm_up()
    except CiteqaError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    launch_demo(create_demo(chain), settings, port=settings.port, chain=chain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
