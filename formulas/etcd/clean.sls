{#- The dcs role left this host: its etcd member stops, no longer starts at
    boot, and the package goes. The data directory and /etc/default/etcd
    stay. Remove the member from the cluster too (`etcdctl member remove`,
    on a remaining member) or it still counts towards the majority. Needs no
    pillar; a no-op on a host that never had the role. -#}
{%- from 'etcd/map.jinja' import etcd with context %}

etcd-service-stopped:
  service.dead:
    - name: {{ etcd.service }}
    - enable: False

etcd-package-removed:
  pkg.removed:
    - name: {{ etcd.package }}
    - require:
      - service: etcd-service-stopped
