{#-
  Keyed hash for personal data (emails, phones, document numbers such as Sympla's CPF).

      pii_hash = sha256(key || ':' || normalised value)        -- lower-case hex, 64 chars

  The key comes from the environment variable MARQUEE_PII_HASH_KEY. It is never rendered into
  SQL text (that would put it in dbt's logs, in target/ and in view definitions): before every
  build, assets/dbt.py writes it into the private build database as `_marquee.pii_key`, and the
  hash reads it from there. Without MARQUEE_PII_HASH_KEY a fixed, clearly labelled development key
  is used and a warning is logged; set it in production so hashes cannot be recomputed from
  guessed emails.

  Normalisation, so the same person hashes the same everywhere:
    kind='email' / 'text': trimmed, lower-cased;
    kind='digits' (phones, CPF/CNPJ): only the digits are kept ("142.536.789-55" = "14253678955").
  Empty values hash to NULL, not to the hash of ''.
-#}
{% macro pii_normalise(value_expr, kind='text') -%}
    {%- if kind == 'digits' -%}
        nullif(regexp_replace(cast({{ value_expr }} as varchar), '[^0-9]', '', 'g'), '')
    {%- else -%}
        nullif(lower(trim(cast({{ value_expr }} as varchar))), '')
    {%- endif -%}
{%- endmacro %}

{% macro pii_hash(value_expr, kind='text') -%}
    case
        when {{ pii_normalise(value_expr, kind) }} is null then null
        else sha256(
            (select key from {{ pii_key_relation() }} limit 1) || ':' || {{ pii_normalise(value_expr, kind) }}
        )
    end
{%- endmacro %}

{#- Where the build keeps the hash key; must match assets/dbt.py (PII_KEY_TABLE). -#}
{% macro pii_key_relation() -%}_marquee.pii_key{%- endmacro %}
