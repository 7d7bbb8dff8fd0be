"""Orchestration for marquee: the Definitions, partitions, jobs, schedules, the CLI and the sandbox."""
