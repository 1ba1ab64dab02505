{#- A planned switchover to this member: `salt db2 state.sls patroni.switchover`
    makes db2 the leader (the old leader rejoins as its replica). A no-op
    when this member leads already. With synchronous mode on, Patroni takes
    only the synchronous standby as candidate ("Sync Standby" in
    patroni-cluster list). -#}
{%- from 'patroni/map.jinja' import patroni with context %}

patroni-switchover-to-this-member:
  cmd.run:
    - name: {{ patroni.cluster_command }} switchover --candidate {{ patroni.name }} --force
    - unless: {{ patroni.is_leader | json }}
