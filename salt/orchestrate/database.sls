{#- The database tier: its view (the cluster, backup health), and a
    planned switchover.

      salt-run state.orchestrate orchestrate.database saltenv=stack pillarenv=stack
      salt-run state.orchestrate orchestrate.database saltenv=stack pillarenv=stack \
          pillar='{"switchover_to": "db2"}'

    The view asks every database and backup host (found by their pillar,
    so hosts left out of the topology are not asked) for what it has: the
    Patroni cluster (`patroni-cluster list`: members, roles, state,
    timeline, lag) or the plain cluster (`pg_lsclusters`); backup health
    (`pgbackrest-status`: the repository's last full and differential
    backups and WAL archive range, the leader's archiving lag and
    failures); the uploads' snapshots (`media-backup-status`). One step for
    every layout: a step whose target matches no host would fail. -#}
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
      - salt: view
{%- endif %}

view:
  salt.function:
    - name: cmd.shell
    - tgt: 'I@stack:roles:database or I@stack:roles:backup'
    - tgt_type: compound
    - arg:
      - >-
        if [ -x /usr/local/sbin/patroni-cluster ]; then /usr/local/sbin/patroni-cluster list;
        elif [ -d /etc/postgresql ]; then pg_lsclusters; fi;
        for view in /usr/local/sbin/pgbackrest-status /usr/local/sbin/media-backup-status;
        do if [ -x $view ]; then $view; fi; done
