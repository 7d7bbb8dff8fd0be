"""`python -m pipelines.cli`: the `marquee` command."""

from pipelines.cli import entry

entry()
