{#- The minion's own settings (pillar salt_minion:config): its master, its
    id and a highstate at every start of the minion, so a host converges at
    each boot without a push. The minion reads the file at its next start:
    restarting it here would cut the very run that writes it. Left alone when
    there is no master (salt-call --local, or no topology:salt_master). -#}
{%- from 'salt_minion/map.jinja' import salt_minion with context %}
{%- if salt_minion.config and opts.get('file_client') != 'local' %}

salt-minion-config:
  file.managed:
    - name: {{ salt_minion.config_file }}
    - contents: {{ salt_minion.config | json }}
    - makedirs: True
    - user: root
    - group: root
    - mode: '0644'

salt-minion-enabled-at-boot:
  service.enabled:
    - name: {{ salt_minion.service }}
{%- else %}

salt-minion-config-left-alone:
  test.succeed_without_changes:
    - name: no master in pillar salt_minion:config, or a masterless run
{%- endif %}
