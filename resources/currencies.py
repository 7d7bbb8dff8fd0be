"""The project's one table of ISO-4217 minor-unit exponents, for Python.

The table itself is the dbt seed `dbt_project/seeds/currencies.csv` (built as `reference.currencies`),
which the models convert money with. Code that runs before any dbt build (the raw assets' figures)
reads the seed's file, so Python and SQL share one table and cannot disagree."""

from __future__ import annotations

import csv
from decimal import Decimal
from functools import cache

from resources import settings

CURRENCIES_CSV = settings.DBT_PROJECT_DIR / "seeds" / "currencies.csv"


@cache
def _exponents() -> dict[str, int]:
    with CURRENCIES_CSV.open(newline="") as f:
        return {row["currency"].upper(): int(row["minor_unit_exponent"]) for row in csv.DictReader(f)
                if row["minor_unit_exponent"]}


def minor_unit_exponent(currency: str) -> int:
    """The currency's ISO-4217 minor-unit exponent (BRL 2, JPY 0); a KeyError for a code the table
    does not know, rather than a guessed 2."""
    return _exponents()[currency.upper()]


def to_minor_units(amount: Decimal, currency: str) -> int:
    """An exact decimal amount in major units as integer minor units, by the currency's exponent.
    A value finer than the minor unit is an error, never rounded."""
    scaled = amount.scaleb(minor_unit_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} is finer than the currency's minor unit")
    return int(scaled)
