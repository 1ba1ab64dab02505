{#- Every topology host, first: refuse to deploy when the topology gives this
    host an address it does not have (a typo there would point peers and
    firewalls at nothing). -#}
{%- set stack = salt['pillar.get']('stack', {}) %}
{%- if not stack.get('address') %}
{{ raise('minion ' ~ opts.id ~ ' is not in pillar topology:hosts; add it there (keys are minion ids)') }}
{%- endif %}
{%- if stack.address not in grains.get('ipv4', []) %}
{{ raise('pillar topology:hosts:' ~ opts.id ~ ':address is ' ~ stack.address ~ ' but this host has ' ~ grains.get('ipv4', []) | join(', ')) }}
{%- endif %}

stack-host-matches-topology:
  test.succeed_without_changes:
    - name: {{ (opts.id ~ ' holds ' ~ stack.address ~ ' with roles ' ~ (stack.roles | join(', ') or '(none)')) | json }}
{#- What the topology allows but the registry advises against (e.g. one dcs
    host): shown at every apply, changing nothing. #}
{%- for warning in stack.get('warnings', []) %}

stack-topology-warning-{{ loop.index }}:
  test.show_notification:
    - text: {{ warning | json }}
{%- endfor %}
