"""`python -m lib ...`: the headless CLI."""

import sys

from lib.cli import main

sys.exit(main())
