import time
import uuid

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import cache_page, never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .forms import UploadForm
from .middleware import HOSTNAME
from .models import Upload, Visit


def _page(request, form, status=200):
    # Database: write a row, read it back.
    visit = Visit.objects.create(host=HOSTNAME, path=request.path)
    visit = Visit.objects.get(pk=visit.pk)
    # Cache: a value per page, computed on a miss and kept for 5 minutes.
    key = f"page:{request.path}"
    cached = cache.get(key)
    cache_status = "hit" if cached is not None else "miss"
    if cached is None:
        cached = {"computed_at": timezone.now(), "computed_by": HOSTNAME}
        cache.set(key, cached, 300)
    context = {
        "hostname": HOSTNAME,
        "visit": visit,
        "visit_count": Visit.objects.count(),
        "recent_visits": Visit.objects.order_by("-id")[:5],
        "cache_status": cache_status,
        "cached": cached,
        "form": form,
        "uploads": Upload.objects.order_by("-id")[:5],
    }
    response = render(request, "visits/index.html", context, status=status)
    response["X-Cache"] = cache_status
    return response


@never_cache
@require_GET
def index(request):
    return _page(request, UploadForm())


# A page most sites have: the same for everyone, rendered from the database
# once a minute and served from memcached in between (the benchmark's
# "cached page").
@cache_page(60)
@require_GET
def recent(request):
    context = {
        "visit_count": Visit.objects.count(),
        "recent_visits": Visit.objects.order_by("-id")[:20],
        "rendered_at": timezone.now(),
        "rendered_by": HOSTNAME,
    }
    return render(request, "visits/recent.html", context)


@never_cache
@require_POST
def upload(request):
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, form, status=400)
    item = form.save(commit=False)
    item.host = HOSTNAME
    item.save()  # writes the file to every media host first
    return redirect("index")


@never_cache
def healthz(request):
    """200 when this app host reaches the database and the cache, else 503."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is a failed check
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        # A key per check: concurrent checks must not read each other's value.
        token = uuid.uuid4().hex
        key = f"healthz:{token}"
        cache.set(key, token, 10)
        checks["cache"] = "ok" if cache.get(key) == token else "error: value not stored"
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001
        checks["cache"] = f"error: {exc.__class__.__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "fail", "host": HOSTNAME, "checks": checks},
        status=200 if healthy else 503,
    )


# A small JSON API, used by the database drills: a write is acknowledged
# only by a 2xx that carries its row id.
@csrf_exempt
@never_cache
@require_POST
def api_visit_create(request):
    visit = Visit.objects.create(host=HOSTNAME, path=request.path)
    return JsonResponse({"id": visit.pk, "host": HOSTNAME}, status=201)


@never_cache
@require_GET
def api_visit(request, pk):
    """A read without a write before it: with replicas, the database router
    sends it to one (djangostack.db); 404 while the row is not there yet."""
    visit = Visit.objects.filter(pk=pk).first()
    if visit is None:
        return JsonResponse({"id": pk, "found": False}, status=404)
    return JsonResponse({"id": visit.pk, "found": True, "created": visit.created.isoformat()})


# The timeout drills' slow endpoint. Bounded: never longer than this.
SLOW_MAX_SECONDS = 120


@never_cache
@require_GET
def slow(request):
    """Answers after ?seconds=N (at most SLOW_MAX_SECONDS): asleep in
    Python (in=app, the default: only uWSGI's harakiri ends it), or in a
    query (in=database: PostgreSQL's statement timeout cancels it first)."""
    try:
        seconds = min(max(float(request.GET.get("seconds", "1")), 0.0), SLOW_MAX_SECONDS)
    except ValueError:
        return JsonResponse({"error": "seconds must be a number"}, status=400)
    where = request.GET.get("in", "app")
    if where == "database":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [seconds])
    elif where == "app":
        time.sleep(seconds)
    else:
        return JsonResponse({"error": "in must be app or database"}, status=400)
    return JsonResponse({"slept": seconds, "in": where, "host": HOSTNAME})
