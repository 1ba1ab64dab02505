{#- Turns the topology, the apps and the secrets into each formula's pillar for
    this minion. Formulas read only their own key; secrets reach only the
    hosts whose roles use them. -#}
{%- from 'lib/topology.jinja' import topology, hosts, addresses, hosts_by_role,
                                    role_addresses, app_leader, database_host, ports,
                                    endpoints with context %}
{%- import_yaml 'apps.sls' as _apps_file %}
{%- import_yaml 'secrets.sls' as _secrets_file %}
{%- set apps = (_apps_file or {}).get('apps') or {} %}
{%- set secrets = (_secrets_file or {}).get('secrets') or {} %}
{%- set id = opts.id %}
{%- set me = hosts.get(id, {}) %}
{%- set roles = me.get('roles', []) %}
{%- set options = me.get('options', {}) %}

{%- macro secret(path) -%}
{%- set value = secrets | traverse(path, None) %}
{%- if not value %}{{ raise('pillar secrets.sls: secrets:' ~ path ~ ' is missing (needed on ' ~ id ~ '; see pillar/secrets.sls.example)') }}{% endif %}
{{- value | json }}
{%- endmacro %}

{%- if not apps %}{{ raise('pillar apps.sls: apps must define at least one Django app') }}{% endif %}
{%- for name, app in apps.items() %}
{%-   for key in ['source', 'settings_module', 'wsgi_module', 'server_names', 'database', 'port'] %}
{%-     if key not in app %}{{ raise('pillar apps.sls: apps:' ~ name ~ ':' ~ key ~ ' is missing') }}{% endif %}
{%-   endfor %}
{%- endfor %}

stack:
  id: {{ id | json }}
  roles: {{ roles | json }}
  address: {{ me.get('address') | json }}
  network: {{ topology.network | json }}
  hosts: {{ hosts | json }}
  hosts_by_role: {{ hosts_by_role | json }}
  app_leader: {{ app_leader | json }}

# Every host publishes the addresses it really has on the private network, so
# a topology address that no host holds shows up before anything is deployed.
mine_functions:
  private_addresses:
    - mine_function: network.ip_addrs
    - cidr: {{ topology.network | json }}

{%- if 'database' in roles %}
postgres:
  listen_addresses: [{{ me.address | json }}]
  port: {{ ports.postgres }}
  shared_host: {{ (roles | length > 1) | json }}
  hba:
{%-   for name, app in apps.items() %}
{%-     for address in role_addresses.app %}
    - {database: {{ app.database.name | json }}, user: {{ app.database.user | json }}, address: {{ (address ~ '/32') | json }}}
{%-     endfor %}
{%-   endfor %}
  users:
{%-   for name, app in apps.items() %}
    {{ app.database.user | json }}: {password: {{ secret('postgres:users:' ~ app.database.user) }}}
{%-   endfor %}
  databases:
{%-   for name, app in apps.items() %}
    {{ app.database.name | json }}: {owner: {{ app.database.user | json }}}
{%-   endfor %}
{%-   for key, value in options.get('database', {}).items() %}
  {{ key }}: {{ value | json }}
{%-   endfor %}
{%- endif %}

{%- if 'cache' in roles %}
memcached:
  listen: {{ me.address | json }}
  port: {{ ports.memcached }}
{%-   for key, value in options.get('cache', {}).items() %}
  {{ key }}: {{ value | json }}
{%-   endfor %}
{%- endif %}

{%- if 'app' in roles %}
django:
  apps:
{%-   for name, app in apps.items() %}
    {{ name }}:
      source: {{ app.source | json }}
      requirements: {{ app.get('requirements', 'requirements.txt') | json }}
      settings_module: {{ app.settings_module | json }}
      wsgi_module: {{ app.wsgi_module | json }}
      server_names: {{ app.server_names | json }}
      admins: {{ app.get('admins', []) | json }}
      https: {{ app.get('https', False) | json }}
      environment: {{ app.get('environment', {}) | json }}
      secret_key: {{ secret('django:' ~ name ~ ':secret_key') }}
      database:
        host: {{ addresses[database_host] | json }}
        port: {{ ports.postgres }}
        name: {{ app.database.name | json }}
        user: {{ app.database.user | json }}
        password: {{ secret('postgres:users:' ~ app.database.user) }}
      cache_servers: {{ endpoints('cache', ports.memcached) }}
      media_write_urls: {{ endpoints('media', ports.media_dav, 'http://', '/' ~ name ~ '/media/') }}
      static_publish_urls: {{ endpoints('media', ports.media_dav, 'http://', '/' ~ name ~ '/static/') }}
      leader: {{ (id == app_leader) | json }}
      uwsgi: {{ dict(options.get('app', {}), socket=me.address ~ ':' ~ app.port) | json }}
{%-   endfor %}
{%- endif %}

{%- if 'media' in roles or 'loadbalancer' in roles %}
nginx:
{%-   if 'media' in roles %}
  media:
    listen: {{ (me.address ~ ':' ~ ports.media) | json }}
    dav_listen: {{ (me.address ~ ':' ~ ports.media_dav) | json }}
    dav_allow: {{ role_addresses.app | json }}
    sites:
{%-     for name, app in apps.items() %}
      {{ name }}: {server_names: {{ app.server_names | json }}}
{%-     endfor %}
{%-     for key, value in options.get('media', {}).items() %}
    {{ key }}: {{ value | json }}
{%-     endfor %}
{%-   endif %}
{%-   if 'loadbalancer' in roles %}
  loadbalancer:
    listen: {{ ports.http }}
    sites:
{%-     for name, app in apps.items() %}
      {{ name }}:
        server_names: {{ app.server_names | json }}
        app_upstreams: {{ endpoints('app', app.port) }}
        media_upstreams: {{ endpoints('media', ports.media) }}
{%-     endfor %}
{%-     for key, value in options.get('loadbalancer', {}).items() %}
    {{ key }}: {{ value | json }}
{%-     endfor %}
{%-   endif %}
{%- endif %}
