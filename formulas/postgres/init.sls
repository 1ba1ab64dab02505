include:
  - postgres.server
  - postgres.databases
