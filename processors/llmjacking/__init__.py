"""LLMjacking: stolen-key detection, every request scored at once (see logic.py)."""
