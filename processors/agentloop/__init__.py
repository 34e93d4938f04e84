"""Runaway agents: loops and overspend per session (see logic.py)."""
