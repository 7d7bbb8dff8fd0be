{#- column_name <= other_column on every row where both are set (e.g. checked in never above issued). -#}
{% test not_greater_than(model, column_name, other_column) %}
select *
from {{ model }}
where {{ column_name }} > {{ other_column }}
{% endtest %}
