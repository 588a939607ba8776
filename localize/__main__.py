"""``python -m localize``: the same as the ``localize`` command."""

from localize.cli import main

main()
