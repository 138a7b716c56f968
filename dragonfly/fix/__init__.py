"""FIX 4.4 on both ends: one codec and one session layer for the gateway and for venues.

- ``dragonfly.fix.codec``: framing, field access and encoding (bounded, every error a reason).
- ``dragonfly.fix.session``: the session state machine on an asyncio Protocol, acceptor or initiator.
- ``dragonfly.fix.mdcodec``: the market-data messages (V, W, Y) the gateway writes and a venue reads.
- ``dragonfly.fix.gateway``: the FIX acceptor service over a topology's views.
"""
