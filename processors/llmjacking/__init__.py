"""LLMjacking: stolen-key detection from per-key behaviour profiles (see logic.py)."""
