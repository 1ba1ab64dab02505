{#- Role media left this host: its site piece goes, nginx reloads if it
    runs. Files under the media root are never touched. #}

nginx-media-site-removed:
  file.absent:
    - name: /etc/nginx/sites-enabled/media.conf

nginx-reloaded-without-media-site:
  cmd.run:
    - name: systemctl reload nginx
    - onlyif: systemctl is-active --quiet nginx
    - onchanges:
      - file: nginx-media-site-removed
