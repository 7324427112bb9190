"""The Avocado model in PyTorch: network (:class:`AvocadoModule`), user-facing :class:`Avocado`.

Examples
--------
>>> from epitensor.model import AvocadoConfig, PRESETS
>>> AvocadoConfig.from_preset("paper").n_nodes
2048
"""

from .avocado import Avocado
from .config import PRESETS, AvocadoConfig
from .module import AvocadoModule
from .positions import GenomeRows

__all__ = ["PRESETS", "Avocado", "AvocadoConfig", "AvocadoModule", "GenomeRows"]
