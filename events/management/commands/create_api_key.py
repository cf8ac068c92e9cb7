"""Create an ingestion API key and print it once; only its hash is stored."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.ingest import api_key_create


class Command(BaseCommand):
    help = "Create an API key for POST /api/v1/events/ and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="free-form name of the client that will use the key (max 50 chars)")
        parser.add_argument("--quiet", action="store_true", help="print only the key, for scripts that capture it")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name or len(name) > 50:
            raise CommandError("NAME must be 1 to 50 characters.")
        api_key, raw_key = api_key_create(name=name)
        if options["quiet"]:
            self.stdout.write(raw_key)
            return
        self.stdout.write(f"API key '{api_key.name}' (prefix {api_key.prefix}):")
        self.stdout.write(raw_key)
        self.stdout.write(
            "Store it now: it is not shown again. Send it as 'Authorization: Api-Key <key>' or 'X-API-Key: <key>'."
        )
