{#- The loadbalancer role left this host: its site piece goes and nginx reloads
    if it runs (nginx itself stays: another role may use it). Files under the
    media root are never touched. Needs no pillar; a no-op on a host that
    never had the role. -#}
{%- from 'nginx/map.jinja' import nginx with context %}

nginx-loadbalancer-site-removed:
  file.absent:
    - name: /etc/nginx/sites-enabled/loadbalancer.conf

nginx-reloaded-without-loadbalancer-site:
  cmd.run:
    - name: systemctl reload {{ nginx.service }}
    - onlyif: systemctl is-active --quiet {{ nginx.service }}
    - onchanges:
      - file: nginx-loadbalancer-site-removed

# Private keys, the ACME account and the caches leave with the role
# (certbot stays installed; with no certificate its timer has nothing to renew).
{%- for path in [nginx.loadbalancer.tls_dir, '/etc/letsencrypt', nginx.loadbalancer.acme_webroot,
                 nginx.loadbalancer.static_cache.path, nginx.loadbalancer.page_cache.path] %}

nginx-loadbalancer-tls-removed-{{ loop.index }}:
  file.absent:
    - name: {{ path }}
    - require:
      - cmd: nginx-reloaded-without-loadbalancer-site
{%- endfor %}
