# The first step out: the database gets its own host.
topology:
  network: 10.77.0.0/24
  hosts:
    web1:
      address: 10.77.0.10
      roles: [loadbalancer, media, app, cache]
    db1:
      address: 10.77.0.20
      roles: [database]
