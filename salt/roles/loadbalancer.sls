include:
  - nginx.loadbalancer
