"""Replay recorded venue traffic through the real adapters (``python -m dragonfly.replay``)."""
