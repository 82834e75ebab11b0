"""The worker's start-up lines are held until logging is set up, then logged once."""

from __future__ import annotations

import logging

import pytest

from streams.worker.startup_log import StartupLog


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture
def root_handler():
    """A handler added to the root logger after installation, as Faust's logging set-up does."""
    handler = Collect()
    yield handler
    logging.getLogger().removeHandler(handler)


def test_lines_before_setup_are_replayed_once_after_it(root_handler: Collect) -> None:
    log = logging.getLogger("slatestream.worker.test")
    startup = StartupLog("info")
    log.info("serving configuration %s", "defaults")
    log.debug("below the level: not held")
    log.warning("a warning passes at once")
    logging.getLogger().addHandler(root_handler)  # Faust sets up logging
    root = logging.getLogger()
    level, root.level = root.level, logging.INFO
    try:
        log.info("after set-up: logged directly")
        assert root_handler.lines == ["INFO after set-up: logged directly"]
        assert startup.replay() == 1
        log.info("after replay")
    finally:
        root.level = level
    assert root_handler.lines == ["INFO after set-up: logged directly", "INFO serving configuration defaults",
                                  "INFO after replay"]
    assert logging.getLogger("slatestream").handlers.count(startup) == 0


def test_replay_restores_the_logger_level() -> None:
    logger = logging.getLogger("slatestream")
    before = logger.level
    startup = StartupLog("debug")
    assert logger.level == logging.DEBUG
    startup.replay()
    assert logger.level == before
