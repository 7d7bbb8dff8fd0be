"""The reverse sync: the `sync.*` dbt models pushed to Cymbal and Cordial.

- `inputs.py`: reads the models' exports;
- `payloads.py`: model rows -> each destination's JSON;
- `consent.py`: when an opt-in may be asserted, and the contacts' keyed ids;
- `engine.py`: concurrent, logged, error-aware pushing;
- `log.py`: the sync log;
- `assets.py`: the Dagster assets and checks.
"""

from assets.reverse_sync.assets import SYNC_ASSETS, SYNC_CHECKS

__all__ = ["SYNC_ASSETS", "SYNC_CHECKS"]
