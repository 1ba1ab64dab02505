include:
  - memcached
