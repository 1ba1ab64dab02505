import socket

HOSTNAME = socket.gethostname()


class AppHostHeaderMiddleware:
    """X-App-Host on every response: which app host served it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-App-Host"] = HOSTNAME
        return response
