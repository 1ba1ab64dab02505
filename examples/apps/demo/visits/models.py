from django.db import models


class Visit(models.Model):
    """One row per page view: proves the app host writes to and reads from the database."""

    created = models.DateTimeField(auto_now_add=True)
    host = models.CharField(max_length=255)
    path = models.CharField(max_length=255)

    def __str__(self):
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.host} {self.path}"


class Upload(models.Model):
    """A file stored through default_storage (every media host)."""

    created = models.DateTimeField(auto_now_add=True)
    host = models.CharField(max_length=255)
    file = models.FileField(upload_to="uploads/%Y/%m/")

    def __str__(self):
        return self.file.name
