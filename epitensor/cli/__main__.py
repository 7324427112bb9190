"""``python -m epitensor.cli``: the ``epitensor`` command line."""

from . import main

main(prog_name="epitensor")
