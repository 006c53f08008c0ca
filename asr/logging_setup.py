"""One logging format for every command-line entry point."""

from __future__ import annotations

import logging


def setup_logging(verbose: bool = False) -> None:
    """Configure the root logger once: ``LEVEL time module: message`` on stderr."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(levelname).1s %(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
