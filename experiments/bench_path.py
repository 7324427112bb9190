"""The experiments' one path insert: ``benchmarks/`` on ``sys.path``, for the helpers they share
with the benchmarks (``benchmarks/common.py``: the source tree, the data folder, the machine line).

Import it first: ``import bench_path  # noqa: F401`` then ``from common import ROADMAP, machine``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
