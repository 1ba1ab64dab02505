from django.contrib import admin

from .models import Upload, Visit

admin.site.register(Visit)
admin.site.register(Upload)
