"""Synthetic venue frames for benchmarks: realistic shapes, a changing top of book.

Every frame of a list carries the same update id (``lastUpdateId``,
``microtimestamp``): benchmarks and the load generator send the list in
cycles, and a frame whose id went back would be refused as an older book.
"""

from __future__ import annotations

import json
import random


def _levels(rng: random.Random, best: float, step: float, n: int) -> list[list[str]]:
    return [[f"{best + i * step:.8f}", f"{rng.uniform(0.01, 40):.8f}"] for i in range(n)]


def binance_depth20(count: int, seed: int = 1) -> list[bytes]:
    """``count`` Binance ``depth20`` frames whose top levels change every frame."""
    rng = random.Random(seed)
    out = []
    mid = 0.05
    for _ in range(count):
        mid += rng.choice((-1, 1)) * 0.00001
        frame = {
            "lastUpdateId": 1000,
            "bids": _levels(rng, mid - 0.000005, -0.00001, 20),
            "asks": _levels(rng, mid + 0.000005, 0.00001, 20),
        }
        out.append(json.dumps(frame, separators=(",", ":")).encode())
    return out


def bitstamp_order_book(count: int, seed: int = 2) -> list[bytes]:
    """``count`` Bitstamp ``order_book`` frames (100 levels a side) with a changing top."""
    rng = random.Random(seed)
    out = []
    mid = 0.05
    for _ in range(count):
        mid += rng.choice((-1, 1)) * 0.00001
        frame = {
            "data": {
                "timestamp": "1700000000",
                "microtimestamp": "1700000000000000",
                "bids": _levels(rng, mid - 0.000007, -0.00001, 100),
                "asks": _levels(rng, mid + 0.000007, 0.00001, 100),
            },
            "channel": "order_book_ethbtc",
            "event": "data",
        }
        out.append(json.dumps(frame, separators=(",", ":")).encode())
    return out
