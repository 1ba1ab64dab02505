# The database tier replicated: three PostgreSQL members run by Patroni (one
# leader, two streaming replicas, one of them synchronous), each beside an
# etcd member (the dcs role: it keeps the leader lock, and three of them
# survive losing one). The app reads from replicas and writes to the leader,
# whichever member that is. backup1 is the pgBackRest repository: WAL
# from whichever member leads, scheduled full and differential backups. The
# web tiers share one host here; `scaled` shows them spread out.
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
      roles: [loadbalancer, app, media, cache]
    db1:
      address: 10.77.0.20
      roles: [database, dcs]
    db2:
      address: 10.77.0.21
      roles: [database, dcs]
    db3:
      address: 10.77.0.22
      roles: [database, dcs]
    backup1:
      address: 10.77.0.30
      roles: [backup]
