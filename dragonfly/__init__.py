"""dragonfly: venue order books in, a merged cross-venue book and views of it out.

The import name is ``dragonfly``; the distribution is ``dragonfly-marketdata``
(:data:`DISTRIBUTION`), because ``dragonfly`` on PyPI is an unrelated project.
"""

from importlib.metadata import PackageNotFoundError, version

#: The name ``pip`` knows this package by.
DISTRIBUTION = "dragonfly-marketdata"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"
