{#-
  Keyed hash for personal data (emails, phones, document numbers such as Sympla's CPF).

      pii_hash = sha256(key || ':' || normalised value)        -- lower-case hex, 64 chars

  The key comes from the environment variable MARQUEE_PII_HASH_KEY and never touches disk: it is
  never rendered into SQL text (that would put it in dbt's logs, in target/ and in view
  definitions), and it is not stored in any table. Every DuckDB connection of the build gets it as
  a session variable (`SET VARIABLE marquee_pii_key`), set by the dbt-duckdb plugin
  resources/dbt_plugin.py when dbt opens the connection, and by resources/pii.py's
  `open_build_database` for marquee's own connections (exports, metadata). A session without the
  variable fails loudly instead of hashing to NULL. Without MARQUEE_PII_HASH_KEY a fixed, clearly
  labelled development key is used and a warning is logged; set it in production so hashes cannot
  be recomputed from guessed emails.

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
        else sha256({{ pii_key() }} || ':' || {{ pii_normalise(value_expr, kind) }})
    end
{%- endmacro %}

{#- The session's hash key; an error, not NULL, when the session has none. The variable's name must
    match resources/pii.py (PII_KEY_VARIABLE). -#}
{% macro pii_key() -%}
    {#- Both sides VARCHAR: with error()'s own NULL type, DuckDB folds `NULL || x` to NULL before the
        error can fire, and a keyless session would hash everything to NULL instead of failing. -#}
    coalesce(
        cast(getvariable('marquee_pii_key') as varchar),
        cast(error('MARQUEE_PII_HASH_KEY is not set in this DuckDB session: open the build database with resources.pii.open_build_database') as varchar)
    )
{%- endmacro %}
