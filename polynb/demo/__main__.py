"""``python -m polynb.demo``."""

import sys

from polynb.demo.app import main

sys.exit(main())
