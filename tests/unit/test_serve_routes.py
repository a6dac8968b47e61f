"""``journeys serve`` and the worker share one route table (streams/web/routes.py): the same
paths, the same handlers; the aiohttp side answers with the auth rules, on a real (empty) chDB store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from streams.settings import Settings
from streams.web import api, serve, ui

TOKEN = "unit-serve-token-0123456789"


class FakeFaustApp:
    """Records what ``api.register`` / ``ui.register`` put on a Faust app."""

    def __init__(self) -> None:
        self.web = SimpleNamespace(web_app=SimpleNamespace(middlewares=[]))
        self.pages: dict[str, Any] = {}

    def page(self, path: str, name: str | None = None):
        def add(view):
            assert path not in self.pages
            self.pages[path] = view
            return view

        return add


def test_the_worker_registers_exactly_the_routes_serve_answers() -> None:
    app = FakeFaustApp()
    api.register(app, handle=None)
    ui.register(app, Settings(_env_file=None))
    assert set(app.pages) == {r.path for r in api.ROUTES + ui.ROUTES}
    assert {r.path for r in api.ROUTES + ui.ROUTES} < {r.path for r in serve.ROUTES}
    assert {"/health/live", "/health/ready"} <= {r.path for r in serve.ROUTES}
    assert len(app.web.web_app.middlewares) == 1  # the auth middleware, once
    names = [r.name for r in serve.ROUTES]
    assert len(names) == len(set(names))


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("serve") / "store"
    h = serve.ReaderHandle(Settings(_env_file=None, clickhouse_url=f"chdb://{path}"))
    h.open()
    yield h
    h.close()


def test_serve_answers_with_the_shared_handlers_and_the_auth_rules(handle: serve.ReaderHandle) -> None:
    settings = Settings(_env_file=None, api_token=TOKEN)

    async def scenario() -> dict[str, Any]:
        server = TestServer(serve.build(settings, handle, None))
        await server.start_server()
        out: dict[str, Any] = {}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with ClientSession() as session:
                async def get(path: str, headers: dict | None = None, method: str = "GET"):
                    async with session.request(method, server.make_url(path), headers=headers or {}) as resp:
                        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

                out["stats"] = await get("/api/v1/stats", auth)
                out["stats-no-token"] = await get("/api/v1/stats")
                out["post"] = await get("/api/v1/stats", auth, method="POST")
                out["limit"] = await get("/api/v1/timeline/x?limit=0", auth)
                out["report"] = await get("/api/v1/reports/funnel", auth)
                out["page"] = await get("/ui/account/acme")
                out["static"] = await get("/ui/static/ui.css")
                out["missing"] = await get("/ui/static/none.css")
                out["ready"] = await get("/health/ready")
                out["metrics"] = await get("/metrics")  # no token, as on a worker
        finally:
            await server.close()
        return out

    out = asyncio.run(scenario())
    status, ctype, body = out["stats"]
    assert status == 200 and ctype.startswith("application/json")
    assert b'"events"' in body
    assert out["stats-no-token"][0] == 401
    assert out["post"][0] == 405
    assert out["limit"][0] == 400 and b"limit must be" in out["limit"][2]
    assert out["report"][0] == 503 and b"no definitions loaded" in out["report"][2]
    status, ctype, body = out["page"]
    assert status == 200 and ctype.startswith("text/html") and b'data-page="account"' in body
    assert out["static"][:2] == (200, "text/css; charset=utf-8")
    assert out["missing"][0] == 404
    assert out["ready"][0] == 200
    status, ctype, body = out["metrics"]
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'journeys_api_requests_total{route="api-stats",status="200"}' in text
    assert 'journeys_api_requests_total{route="api-timeline",status="400"}' in text
    assert 'journeys_api_request_seconds_count{route="ui-account"}' in text
    assert "process_resident_memory_bytes" in text


def test_a_measured_route_counts_its_status_and_a_raising_handler_as_500() -> None:
    from streams import metrics
    from streams.web.routes import Reply, Route, measured

    async def ok(ctx, query, **params):
        return Reply({}, status=204)

    async def boom(ctx, query, **params):
        raise RuntimeError("store down")

    def count(route: str, status: str) -> float:
        return metrics.API_REQUESTS.labels(route, status)._value.get()

    before = count("unit-ok", "204"), count("unit-boom", "500")
    asyncio.run(measured(Route("/ok", "unit-ok", ok))(None, {}))
    with pytest.raises(RuntimeError):
        asyncio.run(measured(Route("/boom", "unit-boom", boom))(None, {}))
    assert (count("unit-ok", "204"), count("unit-boom", "500")) == (before[0] + 1, before[1] + 1)
