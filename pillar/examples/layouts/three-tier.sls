# A load balancer in front of two app hosts, a database and a media server.
# memcached shares the database host: it needs little CPU and the app hosts
# stay identical and disposable. The media server also keeps the database's
# backups (pgBackRest): off the database host, on a disk sized for files.
topology:
  network: 10.77.0.0/24
  # ssh reaches every host only from these (the lab: its machine, the
  # network's gateway; a real site: its bastion or VPN).
  admin_networks: [10.77.0.1/32]
  # The salt-master every host's minion connects to (the lab's master sits
  # here): each host then converges itself at every boot.
  salt_master: 10.77.0.254
  hosts:
    lb1:
      address: 10.77.0.10
      roles: [loadbalancer]
    app1:
      address: 10.77.0.11
      roles: [app]
    app2:
      address: 10.77.0.12
      roles: [app]
    db1:
      address: 10.77.0.20
      roles: [database, cache]
    media1:
      address: 10.77.0.30
      roles: [media, backup]
