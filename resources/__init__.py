"""Provider API clients (Dagster resources) on one shared HTTP core, plus the lake and warehouse."""
