"""Build the optional C speedups of the hot path (everything else is in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and
dragonfly runs its pure-Python code (see ``dragonfly/accel.py``).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("dragonfly._speedups", ["dragonfly/_speedups.c"], optional=True)])
