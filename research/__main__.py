"""`python -m research COMMAND`: the same as `dfd-research COMMAND`."""

import sys

from research.cli import main

sys.exit(main())
