"""Record venue traffic in the recording format (``python -m dragonfly.record``)."""
