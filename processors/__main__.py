"""`python -m processors`: the worker with Settings from the environment (METERLINE_*)."""

from __future__ import annotations

from meterline.settings import Settings
from processors.worker import serve

if __name__ == "__main__":
    serve(Settings())
