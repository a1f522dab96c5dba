"""Top-level test configuration: the helper modules beside the CLI tests (``clikit``) import by name."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
