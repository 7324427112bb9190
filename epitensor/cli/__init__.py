"""The ``epitensor`` command line.

Every command has ``--help`` with an example, prints progress on long work, and exits non-zero
with a one-line ``error: ...`` message on bad input. :func:`main` is the command group
(:mod:`.group`); the commands are in :mod:`.data_commands` (stores), :mod:`.model_commands`
(training and imputation) and :mod:`.evaluate_commands` (scores and the demo), and the options
and helpers they share in :mod:`.options`.
"""

from . import data_commands, evaluate_commands, model_commands
from .group import main

__all__ = ["data_commands", "evaluate_commands", "main", "model_commands"]
