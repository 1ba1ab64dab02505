{#- The app role left this host: the emperor stops (and with it every
    vassal) and its packages go, with what this formula added around them.
    The apps' code and the vassal inis stay (django.clean removes the inis
    it wrote). Needs no pillar; a no-op on a host that never had the role. -#}
{%- from "uwsgi/map.jinja" import uwsgi with context %}

uwsgi-emperor-stopped:
  service.dead:
    - name: {{ uwsgi.service }}
    - enable: False

uwsgi-packages-removed:
  pkg.removed:
    - pkgs: {{ uwsgi.pkgs | json }}
    - require:
      - service: uwsgi-emperor-stopped

uwsgi-emperor-unit-override-removed:
  file.absent:
    - name: /etc/systemd/system/{{ uwsgi.service }}.service.d/salt.conf

uwsgi-systemd-reloaded-after-clean:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: uwsgi-emperor-unit-override-removed

uwsgi-reload-markers-removed:
  file.absent:
    - name: {{ uwsgi.reload_markers_dir }}
