{#- Load balancer role: per site, the app hosts over uWSGI and the media
    hosts for /static/ and /media/; HTTPS for sites with tls, whose
    certificate comes from pillar, is self-signed, or is issued by an ACME
    server (HTTP-01, certbot) within the same apply: nginx first starts on a
    self-signed stand-in, then certbot's deploy hook swaps the real one in. #}
{%- from 'nginx/map.jinja' import nginx with context %}
{%- set lb = nginx.loadbalancer %}
{%- set tls_sites = lb.sites | dictsort | selectattr('1.tls') | list %}
{%- set acme_sites = tls_sites | selectattr('1.tls.source', 'equalto', 'acme') | list %}

include:
  - nginx

{%- macro self_signed(id, dir, names, marker) %}
{%-   set san = [] %}
{%-   for name in names %}
{%-     do san.append(('IP:' if name | is_ip else 'DNS:') ~ name) %}
{%-   endfor %}

{{ id }}:
  cmd.run:
    - name: >-
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
        -days {{ lb.self_signed_days }} -subj {{ ('/CN=' ~ names[0]) | quote }}
        -addext {{ ('subjectAltName=' ~ san | join(',')) | quote }}
        -keyout {{ dir }}/privkey.pem.new -out {{ dir }}/fullchain.pem.new
        && mv {{ dir }}/privkey.pem.new {{ dir }}/privkey.pem
        && mv {{ dir }}/fullchain.pem.new {{ dir }}/fullchain.pem
        {%- if marker is not none %}
        && echo {{ marker | quote }} > {{ dir }}/self-signed
        {%- endif %}
    {#- marker None: any certificate there will do (ACME's stand-in). #}
    - unless: {{ ('test -s ' ~ dir ~ '/fullchain.pem') if marker is none
                 else ('grep -qxF ' ~ (marker | quote) ~ ' ' ~ dir ~ '/self-signed') }}
    - umask: '077'
    - require:
      - pkg: nginx-tls-tools
      - file: {{ dir }}
    - require_in:
      - file: nginx-loadbalancer-site
{%- endmacro %}
{%- if tls_sites %}

nginx-tls-tools:
  pkg.installed:
    - pkgs: {{ (['openssl'] + (['certbot'] if acme_sites else [])) | json }}

{%-   for app in ['default'] + tls_sites | map(attribute='0') | list %}

{{ lb.tls_dir }}/{{ app }}:
  file.directory:
    - user: root
    - group: root
    - mode: '0700'
    - makedirs: True
{%-   endfor %}
{{ self_signed('nginx-tls-default-certificate', lb.tls_dir ~ '/default', ['invalid'], none) }}
{%- endif %}
{%- for app, site in tls_sites %}
{%-   set tls, dir = site.tls, lb.tls_dir ~ '/' ~ app %}
{%-   if tls.source == 'pillar' %}

nginx-tls-{{ app }}-certificate:
  file.managed:
    - name: {{ dir }}/fullchain.pem
    - contents: {{ tls.certificate | json }}
    - mode: '0644'
    - require:
      - file: {{ dir }}
    - require_in:
      - file: nginx-loadbalancer-site
    - watch_in:
      - service: nginx-service

nginx-tls-{{ app }}-key:
  file.managed:
    - name: {{ dir }}/privkey.pem
    - contents: {{ tls.key | json }}
    - mode: '0600'
    - show_changes: False
    - require:
      - file: {{ dir }}
    - require_in:
      - file: nginx-loadbalancer-site
    - watch_in:
      - service: nginx-service
{%-   elif tls.source == 'self_signed' %}
{{ self_signed('nginx-tls-' ~ app ~ '-certificate', dir, tls.names, tls.names | join(' ')) }}
{%-   else %}
{{ self_signed('nginx-tls-' ~ app ~ '-stand-in', dir, tls.names, none) }}
{%-     if tls.get('ca_certificate') %}

# The ACME server's own CA (a private one): certbot must trust its directory.
nginx-tls-{{ app }}-acme-ca:
  file.managed:
    - name: /usr/local/share/ca-certificates/django-stack-acme-{{ app }}.crt
    - contents: {{ tls.ca_certificate | json }}
    - mode: '0644'
  cmd.run:
    - name: update-ca-certificates
    - onchanges:
      - file: nginx-tls-{{ app }}-acme-ca
    - require_in:
      - cmd: nginx-tls-{{ app }}-acme
{%-     endif %}
{%-     set request = tls.directory ~ ' ' ~ tls.names | join(' ') %}

# Issued once per directory and set of names; certbot.timer renews it.
nginx-tls-{{ app }}-acme:
  cmd.run:
    - name: >-
        certbot certonly --non-interactive --agree-tos --webroot
        --webroot-path {{ lb.acme_webroot }} --cert-name {{ app }}
        --server {{ tls.directory | quote }}
        {{ ('--email ' ~ (tls.email | quote)) if tls.get('email') else '--register-unsafely-without-email' }}
        --deploy-hook {{ lb.acme_deploy_hook }}
        {%- for name in tls.names %} -d {{ name | quote }}{% endfor %}
        && echo {{ request | quote }} > {{ dir }}/acme-request
    - unless: grep -qxF {{ request | quote }} {{ dir }}/acme-request
    - require:
      - service: nginx-service
      - file: nginx-acme-deploy-hook
      - file: nginx-acme-webroot
{%-   endif %}
{%- endfor %}
{%- if acme_sites %}

nginx-acme-webroot:
  file.directory:
    - name: {{ lb.acme_webroot }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True

nginx-acme-deploy-hook:
  file.managed:
    - name: {{ lb.acme_deploy_hook }}
    - source: salt://nginx/files/nginx-install-certificate.sh.jinja
    - template: jinja
    - context:
        lb: {{ lb | json }}
        service: {{ nginx.service }}
    - mode: '0755'

nginx-acme-renewal-timer:
  service.running:
    - name: certbot.timer
    - enable: True
    - require:
      - pkg: nginx-tls-tools
{%- endif %}

{%- for cache in ['static_cache', 'page_cache'] %}

nginx-loadbalancer-{{ cache | replace('_', '-') }}:
  file.directory:
    - name: {{ lb[cache].path }}
    - user: {{ nginx.user }}
    - group: {{ nginx.group }}
    - mode: '0700'
    - makedirs: True
{%- endfor %}

nginx-loadbalancer-site:
  file.managed:
    - name: /etc/nginx/sites-enabled/loadbalancer.conf
    - source: salt://nginx/files/loadbalancer.conf.jinja
    - template: jinja
    - context:
        lb: {{ lb | json }}
    - user: root
    - group: root
    - mode: '0644'
    - check_cmd: /usr/local/sbin/nginx-test-candidate sites-enabled/loadbalancer.conf
    - require:
      - file: nginx-main-config
      - file: nginx-loadbalancer-static-cache
      - file: nginx-loadbalancer-page-cache
    - watch_in:
      - service: nginx-service
