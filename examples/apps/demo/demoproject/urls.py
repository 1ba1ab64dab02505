from django.contrib import admin
from django.urls import path

from visits import views

urlpatterns = [
    path("", views.index, name="index"),
    path("upload/", views.upload, name="upload"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
