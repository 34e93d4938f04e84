"""`python -m ingest`: run the ingest process with settings from the environment."""

from __future__ import annotations

import logging

from ingest.server import serve
from meterline.settings import get_settings


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(get_settings())


if __name__ == "__main__":
    main()
