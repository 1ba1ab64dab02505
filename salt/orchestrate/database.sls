{#- The database tier: its view (Patroni members, backup health), and a
    planned switchover.

      salt-run state.orchestrate orchestrate.database saltenv=stack pillarenv=stack
      salt-run state.orchestrate orchestrate.database saltenv=stack pillarenv=stack \
          pillar='{"switchover_to": "db2"}'

    The view is each member's `patroni-cluster list`: members, roles,
    state, timeline and lag; then `pgbackrest-status` on the repository
    host (last full and differential backups, the WAL archive's range) and
    the database hosts (the leader's archiving lag and failures); then the
    backup host's snapshots of the uploads (media-backup-status). Hosts are
    found by their pillar (patroni:name, pgbackrest:stanza, stack:roles), so
    hosts left out of the topology are not asked. -#}
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

backups:
  salt.function:
    - name: cmd.run
    - tgt: 'pgbackrest:stanza:*'
    - tgt_type: pillar
    - arg:
      - /usr/local/sbin/pgbackrest-status

media_backups:
  salt.function:
    - name: cmd.run
    - tgt: 'stack:roles:backup'
    - tgt_type: pillar
    - arg:
      - /usr/local/sbin/media-backup-status
