{%- from 'postgres/map.jinja' import postgres with context %}

{%- set psql = 'runuser -u postgres -- psql -XAtq -p ' ~ postgres.port %}
{%- if postgres.patroni %}
{#-   Under Patroni: the member's server answers (after its bootstrap or
      clone), and only the leader writes; replicas receive it all. #}
{%-   set ready = {'cmd': 'postgres-patroni-member-answers'} %}
{%-   set leader_only = [{'onlyif': psql ~ " -c 'SELECT pg_is_in_recovery()' | grep -qx f"}] %}
{%- else %}
{%-   set ready = {'cmd': 'postgres-cluster-restarted-for-pending-settings'} %}
{%-   set leader_only = [] %}
{%- endif %}

include:
  - postgres.server
{%- if postgres.patroni %}

postgres-patroni-member-answers:
  cmd.run:
    - name: |
        for i in $(seq {{ postgres.patroni_wait_seconds }}); do
          {{ psql }} -c 'SELECT 1' >/dev/null 2>&1 && exit 0
          sleep 1
        done
        echo "PostgreSQL under Patroni does not answer after {{ postgres.patroni_wait_seconds }} s" \
             "(patronictl list; journalctl -u patroni@*)" >&2
        exit 1
    - unless: {{ psql }} -c 'SELECT 1'
{%- endif %}

{%- for name, user in postgres.users | dictsort %}
{%-   set options = user.copy() %}
{%-   set password = options.pop('password', None) %}

# Salt hashes the password (SCRAM-SHA-256) before sending it and compares
# it against the stored verifier, so an unchanged password changes nothing.
postgres-user-{{ name }}:
  postgres_user.present:
    - name: {{ name }}
{%-   if password is not none %}
    - password: {{ password | string | json }}
{%-   endif %}
    - encrypted: scram-sha-256
    - db_port: {{ postgres.port }}
{%-   for key, value in options | dictsort %}
    - {{ key }}: {{ value | json }}
{%-   endfor %}
{%-   for condition in leader_only %}
    - {{ condition | json }}
{%-   endfor %}
    - require:
      - {{ ready | json }}
{%- endfor %}

{%- for name, database in postgres.databases | dictsort %}
{%-   set options = salt['slsutil.merge'](postgres.database_defaults, database) %}

postgres-database-{{ name }}:
  postgres_database.present:
    - name: {{ name }}
    - db_port: {{ postgres.port }}
{%-   for key, value in options | dictsort %}
    - {{ key }}: {{ value | json }}
{%-   endfor %}
{%-   for condition in leader_only %}
    - {{ condition | json }}
{%-   endfor %}
    - require:
      - {{ ready | json }}
{%-   if options.owner is defined and options.owner in postgres.users %}
      - postgres_user: postgres-user-{{ options.owner }}
{%-   endif %}
{%- endfor %}
