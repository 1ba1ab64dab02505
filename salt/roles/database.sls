include:
  - postgres
