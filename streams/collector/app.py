"""aiohttp routes of the collector: auth, size limit, then handling → Kafka → response.

Authentication comes before any work: a Basic-auth key is checked (known, allowed this endpoint
and origin) before the body is read, and a body without one is scanned (not parsed) for a known
``writeKey`` that may post here before it is parsed; the key the body names is checked again.

Paths: ``/v1/{track,page,identify,group,alias,screen,batch,crm}`` and analytics.js's short
``/v1/{t,p,i,g,a,s,b}`` (:data:`handling.SHORT_PATHS`). Bodies are JSON whatever the
``Content-Type`` (analytics.js and ``sendBeacon`` send ``text/plain``). CORS: ``OPTIONS``
preflights and ``Access-Control-Allow-Origin`` for origins the keys allow (:mod:`.access`).

Responses (JSON): 200 ``{"success": true}`` once the broker acknowledged every write;
400/413 with ``accepted`` and ``rejected`` (valid events of the request are still produced,
rejected ones are dead-lettered); 401 for a missing/unknown write key and 403 for a key that may
not post to this endpoint or from this ``Origin`` (:mod:`streams.collector.access`): nothing is stored;
408 when the body does not arrive within ``read_timeout_seconds``; 429 with ``Retry-After``
when a key posts faster than its token bucket allows (``rate_limit_per_second``, checked before
the body is read for a Basic-auth key, after the key scan for a body ``writeKey``): nothing is
stored; 503 when Kafka is unreachable or slow (nothing may be assumed stored: retry).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import orjson
from aiohttp import web

from schemas.errors import ConfigurationError
from streams.collector import access, handling
from streams.collector.kafka_out import BrokerUnavailable, KafkaOut, records_for
from streams.collector.ratelimit import RateLimiter, retry_after
from streams.collector.settings import CollectorSettings, Source, key_id
from streams.exposure import MIN_SECRET_CHARS, weak_write_keys
from streams.settings import Settings

log = logging.getLogger("journeys.collector")
SETTINGS = web.AppKey("settings", Settings)
OUT = web.AppKey("out", KafkaOut)
SOURCES = web.AppKey("sources", list)
LIMITER = web.AppKey("limiter", RateLimiter)
_CHUNK = 64 * 1024


def _json(body: dict, status: int = 200, **headers: str) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return _json({"success": False, "code": code, "message": message}, status, **headers)


async def read_limited(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """The body (decompressed by aiohttp), reading at most ``limit + 1`` bytes: (bytes, over)."""
    if request.content_length is not None and request.content_length > limit:
        return await request.content.read(_CHUNK), True
    parts, size = [], 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(parts), True
    return b"".join(parts), False


async def collect(request: web.Request) -> web.Response:
    """``POST /v1/<endpoint>`` (long or short path); CORS headers when the origin may read the answer."""
    endpoint = handling.endpoint_for(request.match_info["endpoint"])
    if endpoint is None:
        return _error(404, "not_found", f"unknown endpoint /v1/{request.match_info['endpoint'][:100]}")
    response, source = await _collect(request, endpoint)
    origin = request.headers.get("Origin")
    if origin is not None:
        # no source: the key is unknown (401: readable wherever a preflight would pass) or refused
        # (403: no CORS headers, so a page from a refused origin learns nothing)
        allowed = (access.cors_allowed(source, origin) if source is not None else response.status == 401
                   and access.preflight_allowed(request.app[SOURCES], endpoint, origin))
        response.headers.update(access.cors_headers(origin) if allowed else {"Vary": "Origin"})
    return response


async def preflight(request: web.Request) -> web.Response:
    """``OPTIONS /v1/<endpoint>``: a browser's CORS preflight. It carries no key, so it is answered
    for an origin some key allowed this endpoint allows (:func:`access.preflight_allowed`)."""
    path = request.match_info["endpoint"]
    endpoint = handling.endpoint_for(path)
    if endpoint is None:
        return _error(404, "not_found", f"unknown endpoint /v1/{path[:100]}")
    origin = request.headers.get("Origin")
    if origin is None:  # not a CORS preflight
        return web.Response(status=204, headers={"Allow": access.CORS_METHODS})
    if not access.preflight_allowed(request.app[SOURCES], endpoint, origin):
        log.info("403 on preflight of /v1/%s: origin %r allowed by no key", endpoint, origin[:200])
        return _error(403, "origin_not_allowed",
                      f"origin {origin[:200]!r} may not post to /v1/{path[:100]}", Vary="Origin")
    return web.Response(status=204, headers=access.cors_headers(origin, preflight=True))


async def _collect(request: web.Request, endpoint: str) -> tuple[web.Response, Source | None]:
    """The answer to a POST and the key's source (None: no key known or allowed)."""
    settings, out = request.app[SETTINGS], request.app[OUT]
    cfg = settings.collector
    limits = handling.Limits(cfg.max_request_bytes, cfg.max_event_bytes, timedelta(seconds=settings.max_future_seconds),
                             settings.max_event_depth, cfg.max_batch_items, cfg.max_expanded_bytes)
    received_at = datetime.now(timezone.utc)
    limit = handling.body_limit(endpoint, limits)
    header_key = handling.basic_auth_user(request.headers.get("Authorization"))
    origin = request.headers.get("Origin")
    if header_key is not None:  # refuse before reading the body
        refused = _refused(request.app[LIMITER], endpoint, _check_key(cfg, endpoint, header_key, origin))
        if refused is not None:
            return refused
    try:
        async with asyncio.timeout(cfg.read_timeout_seconds):
            body, over = await read_limited(request, limit)
    except TimeoutError:
        log.info("408 on /v1/%s: the body did not arrive within %.0fs", endpoint, cfg.read_timeout_seconds)
        return _error(408, "request_timeout", f"the request body did not arrive within {cfg.read_timeout_seconds:g} s "
                      "(JOURNEYS_COLLECTOR__READ_TIMEOUT_SECONDS)", Connection="close"), None
    if header_key is None:  # refuse before parsing
        refused = _refused(request.app[LIMITER], endpoint, _scan_body_keys(cfg, endpoint, body, origin))
        if refused is not None:
            return refused
    if over:
        parsed: handling.Parsed | handling.Handled = handling.Handled(
            [handling.too_large(body, request.content_length, limit, cfg.max_event_bytes)], None, too_large=True)
    else:
        parsed = handling.parse(body, endpoint, limits=limits)
    checked = _check_key(cfg, endpoint, header_key if header_key is not None else parsed.write_key, origin)
    if isinstance(checked, web.Response):
        return checked, None
    source = checked
    handled = parsed if isinstance(parsed, handling.Handled) else handling.split(
        parsed, body, endpoint, received_at=received_at, limits=limits, id_scope=source.id_scope)
    try:
        await out.send_all(records_for(handled, source, settings.topic_prefix), cfg.produce_timeout_seconds)
    except BrokerUnavailable as exc:
        log.warning("503 on /v1/%s from %s: %s", endpoint, source.name, exc)
        unavailable = _error(503, "kafka_unavailable", f"events not stored, retry later: {exc}", **{"Retry-After": "5"})
        return unavailable, source
    status, payload = handling.response(handled)
    if status != 200:
        log.info("%d on /v1/%s from %s[%s]: %d accepted, %d rejected", status, endpoint, source.name,
                 source.key_id, payload["accepted"], payload["rejected_count"])
    return _json(payload, status), source


def _check_key(cfg: CollectorSettings, endpoint: str, key: str | None, origin: str | None) -> Source | web.Response:
    """The key's source, or the answer refusing it: 401 unknown, 403 not allowed here (:mod:`.access`)."""
    source = cfg.source_for(key)
    if source is None:
        return _unauthorized(endpoint, key)
    refused = access.refusal(source, endpoint, origin)
    return source if refused is None else _forbidden(endpoint, source, refused)


def _refused(limiter: RateLimiter, endpoint: str, checked: web.Response | Source
             ) -> tuple[web.Response, Source | None] | None:
    """The answer to a request refused by its key check (``checked`` is that answer: 401/403)
    or by the key's rate limit (429), with the key's source when known; None: it goes on."""
    if isinstance(checked, web.Response):
        return checked, None
    limited = _rate_limited(limiter, endpoint, checked)
    return None if limited is None else (limited, checked)


def _rate_limited(limiter: RateLimiter, endpoint: str, source: Source) -> web.Response | None:
    """429 with ``Retry-After`` when the key posts faster than its bucket allows (nothing read
    further, nothing stored), else None."""
    wait = limiter.wait(source.key_id)
    if wait <= 0:
        return None
    log.info("429 on /v1/%s from %s[%s]: over %g requests/s", endpoint, source.name, source.key_id, limiter.rate)
    return _error(429, "rate_limited",
                  f"this write key is over its rate limit ({limiter.rate:g} requests/s, bursts of {limiter.burst}): "
                  "nothing was stored, retry after Retry-After seconds", **{"Retry-After": retry_after(wait)})


def _scan_body_keys(cfg: CollectorSettings, endpoint: str, body: bytes, origin: str | None) -> web.Response | Source:
    """Refuse a body without a Basic-auth key before parsing it when no ``writeKey`` found by
    scanning it is known (401) or none that is may post here (403); else the first known source
    that may (its rate limit applies). The key the parsed body names is checked after
    (:func:`_check_key`): the scan only avoids work for a hopeless body."""
    known = [s for s in map(cfg.source_for, handling.body_write_keys(body)) if s is not None]
    if not known:
        return _unauthorized(endpoint, None)
    refusals = [access.refusal(s, endpoint, origin) for s in known]
    first = refusals[0]
    if first is not None and all(refusals):
        return _forbidden(endpoint, known[0], first)
    return next(s for s, refused in zip(known, refusals, strict=True) if refused is None)


def _forbidden(endpoint: str, source: Source, refused: access.Refusal) -> web.Response:
    log.info("%d on /v1/%s from %s[%s]: %s", refused.status, endpoint, source.name, source.key_id, refused.code)
    return _error(refused.status, refused.code, refused.message)


def _unauthorized(endpoint: str, presented: str | None) -> web.Response:
    log.info("401 on /v1/%s: %s", endpoint, f"unknown write key id {key_id(presented)}" if presented else "no write key")
    return _error(401, "unauthorized", "missing or unknown write key (HTTP Basic user, or writeKey in the body)")


async def health(request: web.Request) -> web.Response:
    ready = request.app[OUT].ready
    return _json({"ok": ready, "kafka": "connected" if ready else "connecting"}, 200 if ready else 503)


def build_app(settings: Settings, out: KafkaOut | None = None) -> web.Application:
    """The collector's aiohttp application (the producer starts and stops with it)."""
    app = web.Application(client_max_size=settings.collector.max_request_bytes + 1)
    app[SETTINGS] = settings
    app[SOURCES] = settings.collector.sources()
    app[LIMITER] = RateLimiter(settings.collector.rate_limit_per_second, settings.collector.rate_limit_burst)
    app[OUT] = out or KafkaOut.from_settings(settings, linger_ms=settings.collector.linger_ms)

    async def on_startup(app: web.Application) -> None:
        app[OUT].start()

    async def on_cleanup(app: web.Application) -> None:
        await app[OUT].stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_post("/v1/{endpoint}", collect)
    app.router.add_route("OPTIONS", "/v1/{endpoint}", preflight)
    app.router.add_get("/health", health)
    return app


def refuse_weak_keys(settings: Settings) -> None:
    """Refuse to start with a write key that is no secret (:func:`streams.exposure.weak_write_keys`):
    a placeholder copied from an example would let anyone post events."""
    keys = {k.get_secret_value(): entry.source for k, entry in settings.collector.write_keys.items()}
    problems = weak_write_keys(keys)
    if problems:
        raise ConfigurationError(
            "the collector refuses to start: JOURNEYS_COLLECTOR__WRITE_KEYS: " + "; ".join(problems)
            + f". Use random keys of at least {MIN_SECRET_CHARS} characters (e.g. `openssl rand -hex 16`)")


def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Run the collector until SIGINT/SIGTERM (creates missing topics first if it can)."""
    cfg = settings.collector
    host, port = host or cfg.host, port or cfg.port
    refuse_weak_keys(settings)
    _ensure_topics_briefly(settings)
    sources = ", ".join(f"{entry.source}[{key_id(k.get_secret_value())}]:{'+'.join(sorted(entry.allow))}"
                        for k, entry in cfg.write_keys.items())
    log.info("collector on http://%s:%d, sources: %s", host, port, sources or "NONE (every request gets 401)")
    web.run_app(build_app(settings), host=host, port=port, print=None, access_log=None,
                keepalive_timeout=cfg.keepalive_timeout_seconds)


def _ensure_topics_briefly(settings: Settings, wait_seconds: float = 10.0) -> None:
    """Create missing topics (so the broker does not auto-create them with its defaults), but
    never hold up the start: with Kafka down the collector serves 503s until it is back."""
    import threading

    from kafka.errors import KafkaError as SyncKafkaError

    from streams.admin import ensure_topics

    def run() -> None:
        try:
            ensure_topics(settings)
        except (SyncKafkaError, OSError) as exc:
            log.warning("could not check/create topics (%s); the worker creates them", exc)

    worker = threading.Thread(target=run, name="ensure-topics", daemon=True)
    worker.start()
    worker.join(wait_seconds)
    if worker.is_alive():
        log.warning("Kafka at %s does not answer yet; starting anyway", settings.kafka_bootstrap)
