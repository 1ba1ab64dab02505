{#- The ordered deploy: salt-run state.orchestrate orchestrate.deploy
    Each tier is up before the tier that uses it. Media comes before the app
    tier because the app leader uploads the collected static files to the media
    hosts; migrations run once, on the leader, before any app host reloads. -#}
{%- set stack = salt['pillar.get']('stack') %}
{%- if not stack %}{{ raise('pillar stack is empty on the master: check pillar/top.sls and pillar/topology.sls') }}{% endif %}
{%- set all_hosts = stack.hosts.keys() | list %}
{%- set by_role = stack.hosts_by_role %}

refresh-pillar:
  salt.function:
    - name: saltutil.refresh_pillar
    - tgt: {{ all_hosts | json }}
    - tgt_type: list

update-mine:
  salt.function:
    - name: mine.update
    - tgt: {{ all_hosts | json }}
    - tgt_type: list
    - require:
      - salt: refresh-pillar

{#- Every host first proves it matches the topology; nothing changes if one does not. #}
common:
  salt.state:
    - tgt: {{ all_hosts | json }}
    - tgt_type: list
    - sls: roles.common
    - failhard: True
    - require:
      - salt: update-mine

{%- set previous = ['common'] %}
{%- for step, role, targets in [
      ('database', 'database', by_role.database),
      ('cache', 'cache', by_role.cache),
      ('media', 'media', by_role.media),
      ('app-leader', 'app', [stack.app_leader]),
      ('app', 'app', by_role.app),
      ('loadbalancer', 'loadbalancer', by_role.loadbalancer)] %}

{{ step }}:
  salt.state:
    - tgt: {{ targets | json }}
    - tgt_type: list
    - sls: roles.{{ role }}
    - failhard: True
    - require:
      - salt: {{ previous[-1] }}
{%-   do previous.append(step) %}
{%- endfor %}

{#- Last: roles that moved away stop on their old hosts, after their new hosts serve. #}
retire-moved-roles:
  salt.state:
    - tgt: {{ all_hosts | json }}
    - tgt_type: list
    - sls: roles.retire
    - require:
      - salt: {{ previous[-1] }}
