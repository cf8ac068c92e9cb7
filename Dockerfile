# syntax=docker/dockerfile:1
# One image for every app process (web, bridge, worker, beat, migrate); the
# compose file picks the command. Build: docker build -t realtime-video-ranking .

# --- builder: install the locked runtime requirements, every hash checked -----
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/requirements.txt
RUN pip install --require-hashes -r /tmp/requirements.txt

# --- runtime: slim interpreter, the venv, the code, collected static files ----
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=ranking_site.settings.production

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Only what the processes run; dev data, the local virtualenv and tests stay out.
COPY manage.py ./
COPY ranking_site ./ranking_site
COPY videos ./videos
COPY events ./events
COPY scoring ./scoring
COPY rankings ./rankings
COPY core ./core
COPY leaderboard ./leaderboard
COPY demo ./demo
COPY web ./web

# Static files are collected into the image. The settings demand a secret key
# and allowed hosts; these two values exist only for this build step and are
# not kept in the image's environment.
RUN SECRET_KEY=build-only-collectstatic-not-a-real-secret \
    ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput \
 && python -m compileall -q /app

USER app:app

EXPOSE 8000

# Liveness only (/healthz answers without touching Postgres, Redis or Kafka).
# The Host header is the first ALLOWED_HOSTS entry so Django accepts it;
# /healthz is exempt from the HTTPS redirect.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = (os.environ.get('ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.').replace('*', '') or 'localhost'; u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'Host': h}), timeout=4)"]

CMD ["gunicorn", "ranking_site.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4"]
