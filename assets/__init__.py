"""Raw landing assets, reverse-sync assets, dbt wiring and asset checks."""
