include:
  - uwsgi
  - django
