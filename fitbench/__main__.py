import sys

from fitbench.cli import main

sys.exit(main())
