"""Where the seeded history goes: ``db`` (counters written directly), ``kafka`` (the events
topic) or ``api`` (POST /api/v1/events/), one module each."""
