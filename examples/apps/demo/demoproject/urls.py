from django.contrib import admin
from django.urls import path

from visits import views

urlpatterns = [
    path("", views.index, name="index"),
    path("upload/", views.upload, name="upload"),
    path("recent", views.recent, name="recent"),
    path("healthz", views.healthz, name="healthz"),
    path("slow", views.slow, name="slow"),
    path("api/visits", views.api_visit_create, name="api-visit-create"),
    path("api/visits/<int:pk>", views.api_visit, name="api-visit"),
    path("admin/", admin.site.urls),
]
