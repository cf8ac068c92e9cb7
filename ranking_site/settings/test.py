"""Test settings: the real servers of the dev stack, on the test folder's ports."""

from core.env import env_str
from ranking_site.settings.base import *  # noqa: F403
from ranking_site.settings.base import REST_FRAMEWORK

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"ingest_key": "100000/min", "ingest_ip": "100000/min"}}

# Concurrent test runs sharing the local test servers each get their own database.
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", "test_ranking")}  # noqa: F405
