{#- A topology host applies the states of its roles (pillar stack:states,
    from the role registry) and retires the roles it no longer holds. Roles
    come from pillar keyed by minion id, never from grains. A minion the
    topology does not name has no stack pillar and gets nothing here. -#}
{%- set stack = salt['pillar.get']('stack', {}) %}
{#- A host with no roles (yet, or any more) still retires what it held. #}
{%- if stack.get('address') %}
{{ saltenv }}:
  {{ opts.id | json }}:
    - match: list
    - stack.host
    - firewall
    - salt_minion
{%-   for sls in stack.get('states', []) %}
    - {{ sls }}
{%-   endfor %}
    - stack.retire
{%- endif %}
