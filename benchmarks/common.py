"""What the speed benchmarks (benchmarks/) and the quality experiments (experiments/) share.

Importing this module puts the repository's source tree first on ``sys.path``, so a script
measures the epitensor it sits beside rather than an installed one, and puts ``experiments/`` on
it too (the GPU check reuses the Roadmap experiment's scoring), and ``benchmarks/`` (for scripts
imported from elsewhere). Scripts in ``benchmarks/`` import
it directly; scripts in ``experiments/`` reach it through ``experiments/bench_path.py``, the one
path insert there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
EXPERIMENTS = REPO / "experiments"
for _folder in (EXPERIMENTS, BENCHMARKS, REPO):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def shared_data(*parts: str) -> Path | None:
    """A path under the real data folder, or None when it is absent.

    The folder is ``$EPITENSOR_DATA`` when set (as the Makefile and the package read it), else
    ``shared/data`` beside the repository or one level further up (a git worktree).

    Examples
    --------
    >>> path = shared_data("roadmap_pilot")
    >>> path is None or path.name == "roadmap_pilot"
    True
    """
    roots = [Path(os.environ["EPITENSOR_DATA"])] if os.environ.get("EPITENSOR_DATA") else []
    roots += [REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data"]
    return next((root.joinpath(*parts) for root in roots if root.joinpath(*parts).exists()), None)


#: The Roadmap sample's folder (None when absent), the data of most benchmarks and experiments.
ROADMAP = shared_data("roadmap_pilot")


def machine() -> str:
    """The machine's cores and current load average, for the header or footer of a table.

    Examples
    --------
    >>> machine().split()[1:3]
    ['cores,', 'load']
    """
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}"
