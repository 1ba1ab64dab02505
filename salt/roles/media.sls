include:
  - nginx.media
