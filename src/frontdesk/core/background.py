"""The loop every background sender runs (webhooks, e-mail, scheduled replies): do a round
of work, then sleep until the round says the next work is due, or until someone wakes the
loop early (a commit that made work due, a send that freed a slot), until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class PumpLoop:
    """Subclasses implement `_pump`: one round of work, returning how many seconds until
    the next round is needed (0: at once). A failing round is logged and retried after
    `poll_interval`; it never ends the loop."""

    #: what the log calls this loop when a round fails
    what = "background job"

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _pump(self) -> float:
        raise NotImplementedError

    async def _run_rounds(self) -> None:
        while not self._stopping:
            try:
                wait = await self._pump()
            except Exception:
                log.exception("%s failed; retrying", self.what)
                wait = self.poll_interval
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()
