"""Start-up lines that reach the worker's log.

Faust configures logging when its worker starts (`mode.Worker.on_first_start`), after the
topics, the encoder and the topology are built. Until then Python keeps INFO lines nowhere
(its last-resort handler writes warnings and errors only), so the serving summary, the item
embedding with its provider and projection, and where metrics are served would be lost.
`StartupLog` holds the `slatestream` loggers' lines below WARNING from the moment it is
installed and hands them to the configured handlers once the app runs; warnings and errors
pass through at once (a start-up that fails still says why).
"""

from __future__ import annotations

import logging

import faust

ROOT_LOGGER = "slatestream"


class StartupLog(logging.Handler):
    """Buffers the `slatestream` records below WARNING until `replay` (once logging is set up)."""

    def __init__(self, loglevel: str = "info") -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._root_handlers = list(logging.getLogger().handlers)  # before Faust adds its own
        self._logger = logging.getLogger(ROOT_LOGGER)
        self._level = self._logger.level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.getLevelName(loglevel.upper()))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and not self.logging_configured():
            self.records.append(record)

    def logging_configured(self) -> bool:
        """Whether the root logger's handlers changed since installation (Faust set up logging):
        lines from then on reach them directly and are not held."""
        return logging.getLogger().handlers != self._root_handlers

    def replay(self) -> int:
        """Stop buffering and log the held records through the now configured handlers; returns
        how many."""
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)
        held, self.records = self.records, []
        for record in held:
            logging.getLogger(record.name).handle(record)
        return len(held)

    def replay_when_running(self, app: faust.App) -> None:
        """Replay as the app's first task: Faust has set up logging by then."""

        async def replay_startup_log() -> None:
            self.replay()

        app.task(replay_startup_log)
