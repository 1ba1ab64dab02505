# Every tier redundant except the database primary (replicas come with the
# replication work): 2 load balancers, 3 app hosts, 2 cache hosts, 2 media
# hosts. Minion ids are FQDNs, Salt's default id on a real server.
topology:
  network: 10.77.0.0/24
  # ssh reaches every host only from these (the lab: its machine, the
  # network's gateway; a real site: its bastion or VPN).
  admin_networks: [10.77.0.1/32]
  # The salt-master every host's minion connects to (the lab's master sits
  # here): each host then converges itself at every boot.
  salt_master: 10.77.0.254
  hosts:
    lb-01.example.internal:
      address: 10.77.0.10
      roles: [loadbalancer]
    lb-02.example.internal:
      address: 10.77.0.9
      roles: [loadbalancer]
    app-01.example.internal:
      address: 10.77.0.11
      roles: [app]
    app-02.example.internal:
      address: 10.77.0.12
      roles: [app]
    app-03.example.internal:
      address: 10.77.0.13
      roles: [app]
    db-01.example.internal:
      address: 10.77.0.20
      roles: [database]
    cache-01.example.internal:
      address: 10.77.0.41
      roles: [cache]
      options:
        cache: {memory_mb: 128}
    cache-02.example.internal:
      address: 10.77.0.42
      roles: [cache]
      options:
        cache: {memory_mb: 128}
    media-01.example.internal:
      address: 10.77.0.30
      roles: [media]
    media-02.example.internal:
      address: 10.77.0.31
      roles: [media]
