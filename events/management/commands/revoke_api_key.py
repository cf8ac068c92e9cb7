"""Revoke an ingestion API key by prefix or name."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.ingest import ApiKeyAmbiguous, ApiKeyNotFound, api_key_revoke
from events.selectors import API_KEY_CACHE_TTL_S


class Command(BaseCommand):
    help = "Revoke an API key, given its prefix (the part before the dot) or its name. Cannot be undone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name_or_prefix")
        parser.add_argument("--all", action="store_true", help="revoke every usable key with this name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            revoked = api_key_revoke(name_or_prefix=options["name_or_prefix"], revoke_all=options["all"])
        except ApiKeyNotFound:
            raise CommandError(f"No API key with prefix or name '{options['name_or_prefix']}'.") from None
        except ApiKeyAmbiguous as exc:
            raise CommandError(
                f"Several usable keys are named '{options['name_or_prefix']}': {exc}. "
                "Give a prefix, or --all to revoke them all."
            ) from None
        if not revoked:
            self.stdout.write("Already revoked; nothing to do.")
            return
        for api_key in revoked:
            self.stdout.write(f"Revoked API key {api_key.prefix} ({api_key.name}).")
        self.stdout.write(f"Running servers refuse it within {API_KEY_CACHE_TTL_S:g} seconds.")
