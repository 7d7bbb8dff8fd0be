{#-
  Money helpers. Every amount in the warehouse is an integer count of the currency's minor unit
  (BIGINT, columns named *_cents) next to an ISO-4217 `currency` column.

  Decimal amounts (Sympla's reais) are converted with DuckDB DECIMAL arithmetic, never DOUBLE:
  0.29 * 100 in floating point is 28.999..., which truncates to 28.

  The exponents come from one table, the seed `reference.currencies` (seeds/currencies.csv), which
  the Python side reads too. A code that is not in it has no exponent: conversions give NULL and
  the models' checks flag it, rather than guessing 2 decimals.
-#}

{#- ISO-4217 minor-unit exponent of a currency code (a SQL expression); NULL for an unknown code. -#}
{% macro currency_exponent(code_expr) -%}
    (select c.minor_unit_exponent from {{ ref('currencies') }} as c where c.currency = upper({{ code_expr }}))
{%- endmacro %}

{#-
  Exact conversion of a decimal major-unit amount to integer minor units.

  The value goes through its text form first, so a DOUBLE that left the API as "0.29" becomes the
  DECIMAL 0.29 (DuckDB prints the shortest round-tripping text), and a DECIMAL or VARCHAR column is
  taken as is. The multiplication is DECIMAL x INTEGER, which is exact; the final ROUND only
  matters for sub-minor-unit input (half away from zero), which the providers do not send.
-#}
{% macro to_minor_units(amount_expr, currency_expr) -%}
    cast(
        round(
            cast(cast({{ amount_expr }} as varchar) as decimal(38, 9))
            * cast(power(10, {{ currency_exponent(currency_expr) }}) as bigint)
        ) as bigint
    )
{%- endmacro %}
