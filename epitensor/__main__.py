"""``python -m epitensor``: the ``epitensor`` command line, as ``python -m epitensor.cli`` and ``epitensor``."""

from .cli import main

main(prog_name="epitensor")
