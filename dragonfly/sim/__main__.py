"""Run the simulator: ``python -m dragonfly.sim --help``."""

import sys

from dragonfly.sim.cli import main

sys.exit(main())
