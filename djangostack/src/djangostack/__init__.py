"""Glue between a Django project and the stack the Salt formulas deploy.

- djangostack.settings: production settings read from the app's env file
- djangostack.cache.PersistentPyMemcacheCache: memcached without reconnects
- djangostack.storage.MediaHostsStorage: uploads written to every media host
- python -m djangostack.publish: collected static files to every media host
"""
