"""Production settings: refuse to start when misconfigured."""

from django.core.exceptions import ImproperlyConfigured

from core.env import env, env_bool, env_int, env_list
from ranking_site.settings.base import *  # noqa: F403
from ranking_site.settings.base import DATABASES

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY or SECRET_KEY.startswith("dev-only"):
    raise ImproperlyConfigured("SECRET_KEY must be set in production")
DEBUG = env_bool("DEBUG", False)
if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set in production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# An unparsable DATABASE_URL yields an empty config instead of an error; say so
# here rather than on the first query. The counters rely on PostgreSQL.
_db = DATABASES["default"]
if _db.get("ENGINE") != "django.db.backends.postgresql" or not _db.get("NAME"):
    raise ImproperlyConfigured("DATABASE_URL must be a PostgreSQL URL such as postgres://user:password@host:5432/name")

WHITENOISE_USE_FINDERS = False

# Webhook URLs come from clients: no requests to loopback, private or link-local addresses (SSRF).
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True

# security.W008 only says "SECURE_SSL_REDIRECT is off". Turning it off is an
# explicit operator decision (TLS terminated elsewhere, or a plain-http trial
# such as the bundled docker-compose.yml), so the warning carries no news then.
SILENCED_SYSTEM_CHECKS = [] if SECURE_SSL_REDIRECT else ["security.W008"]
