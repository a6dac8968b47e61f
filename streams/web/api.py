"""Read-only JSON API on the store process (Faust's web server); the CLI uses it when up."""

from __future__ import annotations

import asyncio

import faust
from faust.web import Request, Response, View

from sinks.clickhouse import queries
from streams.storehandle import StoreHandle


def register(app: faust.App, handle: StoreHandle) -> None:
    async def run(fn, *args):
        return await asyncio.to_thread(fn, handle.get(), *args)

    def limit_of(request: Request, default: int = 1000) -> int:
        raw = request.query.get("limit", str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
            raise ValueError("limit must be an integer between 1 and 100000")
        return int(raw)

    @app.page("/api/v1/timeline/{account_id}")
    class TimelineView(View):
        async def get(self, request: Request, account_id: str) -> Response:
            try:
                limit = limit_of(request)
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            cols, rows = await run(queries.timeline, account_id, limit)
            return self.json({"account_id": account_id, "events": queries.records(cols, rows)})

    @app.page("/api/v1/accounts")
    class AccountsView(View):
        async def get(self, request: Request) -> Response:
            cols, rows = await run(queries.accounts, 100)
            return self.json({"accounts": queries.records(cols, rows)})

    @app.page("/api/v1/dead-letters")
    class DeadLettersView(View):
        async def get(self, request: Request) -> Response:
            cols, rows = await run(queries.dead_letters, 100)
            return self.json({"dead_letters": queries.records(cols, rows)})

    @app.page("/api/v1/stats")
    class StatsView(View):
        async def get(self, request: Request) -> Response:
            return self.json(await run(queries.stats))
