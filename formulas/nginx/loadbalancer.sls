{#- Load balancer role: per site, the app hosts over uWSGI and the media
    hosts for /static/ and /media/. #}
{%- from 'nginx/map.jinja' import nginx with context %}

include:
  - nginx

nginx-loadbalancer-site:
  file.managed:
    - name: /etc/nginx/sites-enabled/loadbalancer.conf
    - source: salt://nginx/files/loadbalancer.conf.jinja
    - template: jinja
    - context:
        lb: {{ nginx.loadbalancer | json }}
    - user: root
    - group: root
    - mode: '0644'
    - check_cmd: /usr/local/sbin/nginx-test-candidate sites-enabled/loadbalancer.conf
    - require:
      - file: nginx-main-config
    - watch_in:
      - service: nginx-service
