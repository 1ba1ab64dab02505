{#- The cache role left this host: memcached goes (removing the package stops
    the service; its cache holds nothing that must survive). Needs no pillar;
    a no-op on a host that never had the role. -#}
{%- from 'memcached/map.jinja' import memcached with context %}

memcached-package-removed:
  pkg.removed:
    - name: {{ memcached.package }}
