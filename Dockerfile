# The tracker image: one image, two entry points.
#   journeys worker     Faust worker (roles from JOURNEYS_ROLES), web/query API on 6066
#   journeys collector  HTTP collector (Segment-compatible) on 8088
# See docs/docker.md and docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package build needs: keeps .venv, .journeys, tests and caches out of the layer.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY sinks ./sinks
RUN pip install . \
 && cd / && rm -rf /src

# Non-root runtime user; its home is the tracker's local state (Faust tables, embedded store).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/journeys --shell /usr/sbin/nologin journeys \
 && mkdir -p /var/lib/journeys \
 && chown journeys:journeys /var/lib/journeys

# glibc reads MALLOC_ARENA_MAX at start-up; the worker also applies JOURNEYS_MALLOC_ARENA_MAX (docs/operations.md)
# JOURNEYS_WEB_HOST=0.0.0.0 so a published port reaches the worker: it then refuses to start without
# JOURNEYS_API_TOKEN (docs/operations.md "Exposing the API"); `docker run -e JOURNEYS_API_TOKEN=...`.
ENV MALLOC_ARENA_MAX=2 \
    JOURNEYS_DATA_DIR=/var/lib/journeys \
    JOURNEYS_WEB_HOST=0.0.0.0 \
    JOURNEYS_WEB_PORT=6066

USER journeys
WORKDIR /var/lib/journeys

# 6066: worker web server (query API, health). 8088: HTTP collector (`journeys collector`).
EXPOSE 6066 8088

# No ENTRYPOINT, so a full command works: `docker run IMAGE journeys collector`.
CMD ["journeys", "worker", "--loglevel", "info"]
