{#- Role loadbalancer left this host: its site piece goes, nginx reloads if it
    runs. Files under the media root are never touched. #}

nginx-loadbalancer-site-removed:
  file.absent:
    - name: /etc/nginx/sites-enabled/loadbalancer.conf

nginx-reloaded-without-loadbalancer-site:
  cmd.run:
    - name: systemctl reload nginx
    - onlyif: systemctl is-active --quiet nginx
    - onchanges:
      - file: nginx-loadbalancer-site-removed
