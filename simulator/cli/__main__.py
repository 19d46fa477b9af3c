"""`python -m simulator.cli ...` is `sparsim ...`."""

import sys

from simulator.cli import main

sys.exit(main())
