{#- Base for both roles: package, main config, service. Role pieces
    (nginx.media, nginx.loadbalancer) include this and drop their server
    blocks into sites-enabled/. #}
{%- from 'nginx/map.jinja' import nginx with context %}

nginx-package:
  pkg.installed:
    - name: {{ nginx.package }}

nginx-config-test-script:
  file.managed:
    - name: /usr/local/sbin/nginx-test-candidate
    - source: salt://nginx/files/nginx-test-candidate.sh
    - user: root
    - group: root
    - mode: '0755'

nginx-main-config:
  file.managed:
    - name: /etc/nginx/nginx.conf
    - source: salt://nginx/files/nginx.conf.jinja
    - template: jinja
    - context:
        nginx: {{ nginx | json }}
    - user: root
    - group: root
    - mode: '0644'
    # A broken config never lands: the candidate is tested first.
    - check_cmd: /usr/local/sbin/nginx-test-candidate nginx.conf
    - require:
      - pkg: nginx-package
      - file: nginx-config-test-script

nginx-debian-default-site-removed:
  file.absent:
    - name: /etc/nginx/sites-enabled/default
    - require:
      - pkg: nginx-package

nginx-service:
  service.running:
    - name: {{ nginx.service }}
    - enable: true
    # Config changes reload (workers drain gracefully); never a restart.
    - reload: true
    - require:
      - pkg: nginx-package
    - watch:
      - file: nginx-main-config
      - file: nginx-debian-default-site-removed
