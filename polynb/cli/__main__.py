"""``python -m polynb.cli``: the ``polynb`` command without the console script."""

import sys

from polynb.cli.app import main

sys.exit(main())
