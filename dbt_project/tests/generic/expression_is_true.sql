{#- Every row satisfies a SQL boolean expression (rows where it is NULL pass: use not_null for those). -#}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
