"""``python -m polynb.cli``: the ``polynb`` command without the console script."""

from polynb.cli import main

main()
