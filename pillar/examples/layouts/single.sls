# One $10 box: every tier on one host.
topology:
  network: 10.77.0.0/24
  hosts:
    web1:
      address: 10.77.0.10
      roles: [loadbalancer, media, app, cache, database]
