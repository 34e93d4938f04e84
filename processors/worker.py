"""Run the processors worker: `processors.worker.serve(settings)` (used by the CLI)."""

from __future__ import annotations

import logging

import faust

from meterline.kafka import create_topics, install_repeat_filter, wait_for_broker
from meterline.settings import Settings
from meterline.workers import worker_settings
from processors.app import create_app

__all__ = ["serve"]


def serve(settings: Settings, loglevel: str = "WARNING", worker: int | None = None) -> None:
    """Block running the Faust worker; return after a clean stop (SIGTERM or SIGINT).

    Makes sure our topics exist first (explicit creation, never broker auto-creation),
    so the worker also starts against a fresh broker. `worker`: run as that worker of
    `processors.workers` (its own web port and data dir, meterline/workers.py).
    """
    if worker is not None:
        settings = worker_settings(settings, "processors", worker)
    wait_for_broker(settings)
    create_topics(settings)
    app = create_app(settings)
    # A broker outage makes aiokafka log each failed fetch and metadata attempt (~100 lines
    # a second): one line per kind per 30 s says the same.
    install_repeat_filter("aiokafka")
    # Faust installs the SIGTERM/SIGINT handlers and stops agents, commits, then exits.
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # The terminal spinner sets the root logger to DEBUG (every aiokafka debug call then
    # builds a record: ~7% CPU) and writes escape codes into service logs.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    logging.getLogger(__name__).info("processors worker stopped")
