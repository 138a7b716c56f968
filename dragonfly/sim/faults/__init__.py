"""Fault injection for the simulator and the replay server.

A fault is written ``KIND[,key=value]...`` (``close,code=1000``,
``silence,for=30``, ``nan,count=5``) and applied to one venue's server:

    async with Simulator(["binance"], ["ethbtc"]) as sim:
        fault = sim.fault("binance", "nan,count=3")
        await fault.wait_applied(3)

:data:`KINDS` lists every kind; ``docs/faults.md`` says what each does on the
wire. A running simulator takes faults over HTTP too
(``GET /dragonfly/faults?spec=...`` on any venue port, or
``python -m dragonfly.sim.fault URL SPEC``).
"""

from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.spec import KINDS, Fault, parse_fault

__all__ = ["KINDS", "ActiveFault", "Fault", "parse_fault"]
