"""`python -m processors`: the same as `meterline processors` (settings from METERLINE_*)."""

from __future__ import annotations

import sys

from meterline.cli import main

if __name__ == "__main__":
    sys.exit(main(["processors"]))
