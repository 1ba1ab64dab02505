{#- The host's inbound firewall: one nftables table of its own, loaded by a
    unit of its own at boot and reloaded in one transaction on change. -#}
{%- from 'firewall/map.jinja' import firewall with context %}

firewall-package-installed:
  pkg.installed:
    - name: {{ firewall.package }}

firewall-ruleset:
  file.managed:
    - name: {{ firewall.ruleset }}
    - source: salt://firewall/files/ruleset.nft.jinja
    - template: jinja
    - context:
        firewall: {{ firewall | json }}
    - makedirs: True
    - user: root
    - group: root
    - mode: '0644'
    # A ruleset nft refuses never replaces the one in force.
    - check_cmd: /usr/sbin/nft -c -f
    - require:
      - pkg: firewall-package-installed

firewall-unit:
  file.managed:
    - name: /etc/systemd/system/{{ firewall.service }}.service
    - source: salt://firewall/files/firewall.service.jinja
    - template: jinja
    - context:
        firewall: {{ firewall | json }}
    - user: root
    - group: root
    - mode: '0644'

firewall-service-running:
  service.running:
    - name: {{ firewall.service }}
    - enable: True
    # Reload: the new table replaces the old in one transaction.
    - reload: True
    - watch:
      - file: firewall-ruleset
      - file: firewall-unit

# The table was deleted by hand (or a flush of the whole ruleset) while
# the unit still counts as active: load it again.
firewall-table-loaded:
  cmd.run:
    - name: /usr/sbin/nft -f {{ firewall.ruleset }}
    - unless: /usr/sbin/nft list table inet {{ firewall.table }}
    - require:
      - service: firewall-service-running
