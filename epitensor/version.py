"""The package's version, in a module of its own so that code recording it (saved models) does not
import the package's ``__init__``.

Examples
--------
>>> from epitensor.version import __version__
>>> __version__.count(".")
2
"""

__version__ = "0.1.0"
