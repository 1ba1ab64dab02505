# The lab's own test topology: three hosts, never deployed, so the lab's
# tests do not depend on the formulas. It is still a valid topology (the
# stack's check wants every role held): alpha is the load balancer, so the
# lab publishes its port 80; charlie's id is an FQDN, Salt's default id.
topology:
  network: 10.77.0.0/24
  # ssh reaches every host only from these (the lab: its machine, the
  # network's gateway; a real site: its bastion or VPN).
  admin_networks: [10.77.0.1/32]
  # The salt-master every host's minion connects to (the lab's master sits
  # here): each host then converges itself at every boot.
  salt_master: 10.77.0.254
  hosts:
    alpha:
      address: 10.77.0.11
      roles: [loadbalancer]
    bravo:
      address: 10.77.0.12
      roles: [app, media]
    charlie.example.internal:
      address: 10.77.0.13
      roles: [database, cache]
