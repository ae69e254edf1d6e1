"""flyk: Kubernetes on Fly.io Machines.

The library never imports the CLI; `flyk.cli` is the composition root on top of it.
"""

from flyk._version import __version__

__all__ = ["__version__"]
