"""Run the replay server: ``python -m dragonfly.sim.replay --help``."""

import sys

from dragonfly.sim.replay.cli import main

sys.exit(main())
