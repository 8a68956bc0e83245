"""Connecting to a dask scheduler for the sweep engine's dask backend, with a hard time limit: an
address that does not answer, answers something other than dask, or is not an address at all is
one ValueError within `CONNECT_TIMEOUT` seconds and a little more, never a hang or a traceback."""

from __future__ import annotations

import logging
import re
import threading

CONNECT_TIMEOUT = 5
"""Seconds the scheduler gets to answer."""
ADDRESS = re.compile(
    r"^(((tcp|tls|ws|wss|ucx)://)?(\[[0-9a-fA-F:]+\]|[^:/\s\[\]]+):\d{1,5}|inproc://\S+)$"
)
"""What a scheduler address looks like: [tcp|tls|ws|wss|ucx://]HOST:PORT (dask's default protocol is
tcp), or inproc://... (a cluster in this process)."""
START = "start one with `dask scheduler` and workers with `dask worker {address} --nthreads 1`"


def connect(scheduler: str):
    """A `distributed.Client` of the scheduler at `scheduler`, connected within the time limit.

    Returns the connected Client (not set as dask's default; the caller closes it).

    Raises:
        ValueError: a malformed address (not [protocol://]HOST:PORT), or a scheduler that could not
            be reached or spoke no dask within `CONNECT_TIMEOUT` (plus 2 s of grace); the message
            says how to start one."""
    if not isinstance(scheduler, str) or not ADDRESS.match(scheduler):
        raise ValueError(
            f"{scheduler!r} is not a dask scheduler address: give tcp://HOST:PORT (e.g. "
            "tcp://127.0.0.1:8786), the address `dask scheduler` prints; or "
            f"{START.format(address='ADDRESS')}"
        )
    from distributed import Client

    outcome: dict = {}

    def attempt():
        try:
            outcome["client"] = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except BaseException as exc:  # any failure of dask's, reported to the caller below
            outcome["error"] = exc

    # a handshake that never ends must not hold the exit
    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT + 2)
    if "client" in outcome:
        return outcome["client"]
    reason = (
        f"{type(outcome['error']).__name__}: {outcome['error']}"
        if "error" in outcome
        else "no answer"
    )
    # the half-open client's noise when it is dropped
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    raise ValueError(
        f"could not reach the dask scheduler at {scheduler} within {CONNECT_TIMEOUT} s "
        f"({' '.join(reason.split())[:200]}); check the address, or "
        f"{START.format(address=scheduler)}"
    )
