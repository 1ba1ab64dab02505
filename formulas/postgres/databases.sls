{%- from 'postgres/map.jinja' import postgres with context %}

include:
  - postgres.server

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
    - require:
      - cmd: postgres-cluster-restarted-for-pending-settings
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
    - require:
      - cmd: postgres-cluster-restarted-for-pending-settings
{%-   if options.owner is defined and options.owner in postgres.users %}
      - postgres_user: postgres-user-{{ options.owner }}
{%-   endif %}
{%- endfor %}
