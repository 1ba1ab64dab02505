# The lab's own test topology: three hosts, never deployed, so the lab's
# tests do not depend on the formulas. alpha is a load balancer only so the
# lab publishes its port 80.
topology:
  network: 10.77.0.0/24
  hosts:
    alpha:
      address: 10.77.0.11
      roles: [loadbalancer]
    bravo:
      address: 10.77.0.12
      roles: []
    charlie:
      address: 10.77.0.13
      roles: []
