"""``python -m worker``: the same as ``aigen-worker``."""

import sys

from worker.cli import main

sys.exit(main())
