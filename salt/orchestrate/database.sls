{#- The database cluster (Patroni members): its view, and a planned switchover.

      salt-run state.orchestrate orchestrate.database saltenv=stack pillarenv=stack
      salt-run state.orchestrate orchestrate.database saltenv=stack pillarenv=stack \
          pillar='{"switchover_to": "db2"}'

    The view is each member's `patroni-cluster list`: members, roles,
    state, timeline and lag. Members are found by their pillar (patroni:name),
    so hosts left out of the topology are not asked. -#}
{%- set envs = {'saltenv': saltenv, 'pillarenv': opts.get('pillarenv') or saltenv} %}
{%- set candidate = pillar.get('switchover_to') %}
{%- if candidate %}

switchover:
  salt.state:
    - tgt: {{ candidate | json }}
    - sls: [patroni.switchover]
    - saltenv: {{ envs.saltenv }}
    - pillarenv: {{ envs.pillarenv }}
    - failhard: True
    - require_in:
      - salt: cluster
{%- endif %}

cluster:
  salt.function:
    - name: cmd.run
    - tgt: 'patroni:name:*'
    - tgt_type: pillar
    - arg:
      - /usr/local/sbin/patroni-cluster list
