{#-
  Money helpers. Every amount in the warehouse is an integer count of the currency's minor unit
  (BIGINT, columns named *_cents) next to an ISO-4217 `currency` column.

  Decimal amounts (Sympla's reais) are converted with DuckDB DECIMAL arithmetic, never DOUBLE:
  0.29 * 100 in floating point is 28.999..., which truncates to 28.
-#}

{#- ISO-4217 minor-unit exponent of a currency code (a SQL expression). Codes not listed use 2. -#}
{% macro currency_exponent(code_expr) -%}
    case
        when upper({{ code_expr }}) in (
            'BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG',
            'RWF', 'UGX', 'UYI', 'VND', 'VUV', 'XAF', 'XOF', 'XPF'
        ) then 0
        when upper({{ code_expr }}) in ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND') then 3
        else 2
    end
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
