"""History recording for a local session: each client's recorder, flushed every second in the background (the
history-recording part of :class:`~pooltui.session.local.MonitorSession`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from pooltui.client.pool_client import PoolClient
from pooltui.session.build import HistoryRecorder
from pooltui.session.local_state import SessionState
from pooltui.session.views import event_dict


@dataclass
class HistoryRecording:
    """The recorders that write the clients' events, usage and key states to the history, and their flush loop."""

    state: SessionState
    recorders: list[HistoryRecorder] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The flush loop; the history's writes go to a thread of their own from now on (a flush of a busy
        second's records never holds the event loop while the disk is written)."""
        if self.recorders:
            if self.state.history is not None:
                self.state.history.write_behind()
            self._task = asyncio.create_task(self.flush_history())

    async def flush_history(self) -> None:
        """Write what the recorders buffered to the history every second, until cancelled; incidents that
        have gone quiet end then too, whether or not a monitor is looking."""
        while True:
            await asyncio.sleep(1.0)
            for recorder in self.recorders:
                recorder.flush()
            for series in self.state.series.values():
                series.tracker.settle()

    def close(self) -> None:
        """Stop the flush loop and write the history's last lines."""
        if self._task is not None:
            self._task.cancel()
        for recorder in self.recorders:
            recorder.close()
        if self.state.history is not None:
            self.state.history.settle()  # written before the session ends: nothing lost at a clean stop

    def add(self, client: PoolClient) -> None:
        """A client added while running: recorded as the others (when the session has a history)."""
        if self.state.history is not None:
            self.recorders.append(HistoryRecorder(self.state.history, client))

    def remove(self, client: PoolClient) -> None:
        """A client removed while running: its last lines written, no longer recorded."""
        for recorder in [r for r in self.recorders if r.client is client]:
            recorder.close()
            self.recorders.remove(recorder)

    def track(self) -> None:
        """The recorders follow their clients' pools as they are now."""
        for recorder in self.recorders:
            recorder.track()

    def history_rows(self) -> tuple[list[dict], str]:
        """Past events: from the history database when there is one, else this session's ring."""
        history = self.state.history
        if history is not None:
            for recorder in self.recorders:
                recorder.flush()
            return history.events(time.time() - 86400, None, 2000), "history, last 24 h"
        return [dict(event_dict(e, i)) for i, e in enumerate(self.state.client.events.recent())], "this session"
