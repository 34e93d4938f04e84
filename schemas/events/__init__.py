"""Event models. `v1` is the current version."""

from schemas.events.v1 import *  # noqa: F403
from schemas.events.v1 import __all__ as __all__
