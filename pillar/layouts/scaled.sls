# Every tier redundant except the database primary (replicas come with
# the replication work): 2 load balancers, 3 app hosts, 2 cache hosts,
# 2 media hosts.
topology:
  network: 10.77.0.0/24
  hosts:
    lb1:
      address: 10.77.0.10
      roles: [loadbalancer]
    lb2:
      address: 10.77.0.9
      roles: [loadbalancer]
    app1:
      address: 10.77.0.11
      roles: [app]
    app2:
      address: 10.77.0.12
      roles: [app]
    app3:
      address: 10.77.0.13
      roles: [app]
    db1:
      address: 10.77.0.20
      roles: [database]
    cache1:
      address: 10.77.0.41
      roles: [cache]
      options:
        cache: {memory_mb: 128}
    cache2:
      address: 10.77.0.42
      roles: [cache]
      options:
        cache: {memory_mb: 128}
    media1:
      address: 10.77.0.30
      roles: [media]
    media2:
      address: 10.77.0.31
      roles: [media]
