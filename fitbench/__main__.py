"""`python -m fitbench`: the fitbench command."""

import sys

from fitbench.cli import main

sys.exit(main())
