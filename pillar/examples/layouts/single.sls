# One $10 box: every tier on one host.
topology:
  network: 10.77.0.0/24
  # ssh reaches every host only from these (the lab: its machine, the
  # network's gateway; a real site: its bastion or VPN).
  admin_networks: [10.77.0.1/32]
  # The salt-master every host's minion connects to (the lab's master sits
  # here): each host then converges itself at every boot.
  salt_master: 10.77.0.254
  hosts:
    web1:
      address: 10.77.0.10
      roles: [loadbalancer, media, app, cache, database]
