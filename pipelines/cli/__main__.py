"""`python -m pipelines.cli`: the `marquee` command."""

import sys

from pipelines.cli import main

sys.exit(main())
