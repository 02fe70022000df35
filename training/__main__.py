"""`python -m training COMMAND`: the same as `dfd-train COMMAND`."""

import sys

from training.cli import main

sys.exit(main())
