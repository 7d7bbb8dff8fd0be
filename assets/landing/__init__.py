"""The machinery every raw landing asset shares, by what it does:

- `convert`: how one API record becomes one typed row (the helpers a provider's converter uses);
- `lander`: routing rows to their day's partition, quarantining misfits, committing every day;
- `snapshot`: which day of a window an observation of *now* may be written under;
- `materialize`: what a landing asset reports to Dagster (metadata, the "not configured" line);
- `checks`: the asset checks every raw entity gets.

A provider module (`assets/<provider>.py`) only says how one record becomes one row and which day it
belongs to; files, quarantine, metadata and checks happen here, identically for all.
"""
