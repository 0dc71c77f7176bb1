"""`python -m julia_chips` is the `julia-chips` console script."""

import sys

from julia_chips.cli.main import main

sys.exit(main())
