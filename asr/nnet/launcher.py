"""Tie a torchrun rank's life to its launcher's (Linux), without importing anything heavy.

torchrun starts every rank in a session of its own, so a ``kill -9`` of torchrun's process group (a preempted
job, a user's ``kill -9``) would leave the ranks running as orphans that keep training and writing checkpoints
next to the run started again. :func:`die_with_launcher` asks the kernel to kill the rank with its parent; it is
called at the top of ``python -m asr.train`` (before torch is imported, so that a torchrun killed while its ranks
import leaves none behind) and again by :func:`asr.nnet.distributed.start_ddp`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def die_with_launcher() -> bool:
    """Ask the kernel to SIGKILL this process when its parent (torchrun's agent) dies (Linux ``prctl``).

    torchrun starts every rank in a session of its own, so a ``kill -9`` of torchrun's process group (a
    preempted job, a user's ``kill -9``) would leave the ranks running as orphans that keep training and
    writing checkpoints next to the run started again. Exits at once (status 1) when the parent is already
    gone (this process was handed to init) before the request took effect.

    Returns:
        True when the request was made; False off Linux or when ``prctl`` is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() == 1:
        logger.error("the process that started this rank (torchrun) is gone: exiting")
        os._exit(1)
    return True


def launched_by_torchrun() -> bool:
    """Whether this process is a rank started by torchrun (its environment variables are set)."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "LOCAL_RANK" in os.environ
