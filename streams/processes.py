"""One ``journeys worker`` on two cores: the stream role in a child process (issue #17, item 2).

A worker holding both roles in one process runs every stream stage, the store's sinks and its
API on one event loop and one GIL: on a 2-core machine it drains on about one core
(docs/benchmarks.md). With ``JOURNEYS_WORKER_PROCESSES`` 2 (auto: 2 or more CPUs) the worker
the user started keeps the **store** role — the web port, the API, the embedded store — and
starts the **stream** role as a child: the same command (``python -m streams worker …``) with
``JOURNEYS_ROLES=stream``, its web server on a free loopback port. The two are one worker to
everything outside:

- **Lifetime.** The child dies with its parent, however the parent ends (``kill -9`` included:
  ``PR_SET_PDEATHSIG``). A graceful stop of the parent stops the child gracefully first. If the
  child ends while the parent runs (a crashed stage exits 70), the parent exits with the child's
  code at once: a supervisor restarts the whole worker, never half of it.
- **Operations.** The parent's ``/metrics`` holds both processes' series (summed where both have
  the same series); its ``/health/live`` and ``/health/ready`` answer for both.

The roles already ran as two processes for deployments that scale them apart (docker-compose.yml);
the store role has its own consumer group (``streams.app``), and only the stream role has tables,
so the two never share state on disk.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from mode import Service
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from streams.settings import Settings

log = logging.getLogger(__name__)

STOP_SECONDS = 60.0
"""How long a graceful stop waits for the child before it is killed."""
PROBE_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1


def count(settings: Settings) -> int:
    """Processes this worker runs: 2 only when it holds both roles (see the module docstring)."""
    return count_for(settings.roles, settings.worker_processes)


def count_for(roles: str, worker_processes: int) -> int:
    """:func:`count` from the two settings' values (``JOURNEYS_ROLES``, ``JOURNEYS_WORKER_PROCESSES``)."""
    held = {r.strip() for r in roles.split(",")}
    if not {"stream", "store"} <= held:
        return 1
    if worker_processes:
        return worker_processes
    # auto: only where a child can be tied to its parent's life (PR_SET_PDEATHSIG is Linux's)
    return 2 if _cpus() >= 2 and sys.platform.startswith("linux") else 1


def _cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def groups_for(app_id: str, roles: str, worker_processes: int) -> dict[str, str]:
    """The consumer group each role of a worker commits as (``{"stream": …, "store": …}``): the
    store role has its own, ``<app>-store``, whenever it runs in a process of its own — given
    alone, or as the parent of a worker running two (``streams.app``)."""
    held = {r.strip() for r in roles.split(",")}
    out: dict[str, str] = {}
    if "stream" in held:
        out["stream"] = app_id
    if "store" in held:
        out["store"] = app_id if "stream" in held and count_for(roles, worker_processes) == 1 else f"{app_id}-store"
    return out


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LISTEN_PORTS = (20000, 32768)
"""Where :func:`free_port` looks first: below Linux's default ephemeral range (32768–60999)."""


def _ephemeral() -> tuple[int, int]:
    """The kernel's range of source ports for outgoing connections (Linux's default elsewhere)."""
    try:
        low, high = (int(x) for x in EPHEMERAL_RANGE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """A port nothing listens on, for a server another process will start on it, outside the
    kernel's ephemeral range. A port the kernel hands out (``bind(0)``) comes from the range it
    also takes the source ports of outgoing connections from: in the seconds until the stream
    process binds it, one of this process's Kafka or store connections could take it, and the
    stream process then failed to start ("address already in use", seen once in a CI run). Ports
    outside that range only go to an explicit ``bind``. Falls back to ``bind(0)`` when every port
    tried is taken."""
    rng = rng or random.SystemRandom()
    low, high = _ephemeral()
    candidates = [p for p in range(*LISTEN_PORTS) if not low <= p <= high] or \
        [p for p in range(1024, 65536) if not low <= p <= high]
    for port in rng.sample(candidates, min(50, len(candidates))):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """How the stream process is started: its command, environment and web address."""

    argv: list[str]
    env: dict[str, str]
    port: int
    base: str = field(init=False)

    def __post_init__(self) -> None:
        self.base = f"http://127.0.0.1:{self.port}"


def plan(argv: list[str], environ: Mapping[str, str]) -> Child:
    """The child's command line (this process's own) and environment (this one's, one role)."""
    port = free_port()
    env = {**environ, "JOURNEYS_ROLES": "stream", "JOURNEYS_WORKER_PROCESSES": "1",
           "JOURNEYS_WEB_HOST": "127.0.0.1", "JOURNEYS_WEB_PORT": str(port)}
    return Child([sys.executable, "-m", "streams", *child_args(argv[1:])], env, port)


WEB_OPTIONS = ("--web-port", "--web-bind", "--web-host", "--web-transport", "-p", "-b", "-h")
"""Faust worker options naming the web server's address: the parent's, never the child's."""


def child_args(args: list[str]) -> list[str]:
    """This process's arguments without the web server's address (``-p 8080``, ``--web-port=8080``,
    ``-p8080``…): a command-line option would beat the child's ``JOURNEYS_WEB_PORT``."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in WEB_OPTIONS:
            skip = True
            continue
        if any(arg.startswith(f"{opt}=") for opt in WEB_OPTIONS if opt.startswith("--")) or (
                len(arg) > 2 and arg[:2] in ("-p", "-b", "-h") and not arg.startswith("--")):
            continue
        out.append(arg)
    return out


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child before exec
    if not sys.platform.startswith("linux"):  # JOURNEYS_WORKER_PROCESSES=2 elsewhere: a stop still stops it
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the line above: nothing will kill us later
        os._exit(1)


def start(child: Child) -> subprocess.Popen[bytes]:
    """Start the stream process (at once: it starts while this one does)."""
    # its own session: a terminal's Ctrl-C reaches this process, which stops the child in order
    proc = subprocess.Popen(child.argv, env=child.env, preexec_fn=_die_with_parent, start_new_session=True)
    log.info("stream role started in process %d (web on %s)", proc.pid, child.base)
    return proc


class StreamProcess(Service):
    """Watches and stops the child holding the stream role (a ``mode`` service of the app)."""

    proc: subprocess.Popen[bytes]

    def __init__(self, **kwargs: Any) -> None:
        self.stopping = False
        super().__init__(**kwargs)

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            proc = self.proc
            code = proc.poll()
            if code is not None and not self.stopping:
                exit_code = code if code > 0 else 128 - code if code < 0 else 70
                log.error("the stream process (pid %d) exited with code %d: this worker exits with %d too, "
                          "so that its supervisor restarts both", proc.pid, code, exit_code)
                logging.shutdown()
                os._exit(exit_code)
            await self.sleep(0.2)

    async def on_stop(self) -> None:
        self.stopping = True
        proc = self.proc
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("the stream process (pid %d) did not stop within %.0fs: killing it", proc.pid, STOP_SECONDS)
            proc.kill()
            await asyncio.to_thread(proc.wait)


def attach(app: Any, proc: subprocess.Popen[bytes]) -> None:
    """Make ``app`` watch ``proc`` and stop it when it stops (:class:`StreamProcess`)."""
    app.service(type("StreamRoleProcess", (StreamProcess,), {"proc": proc}))


async def get(child: Child, path: str) -> tuple[int, bytes]:
    """``GET`` a path of the child's web server: (status, body); status 0 if it does not answer."""
    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(child.base + path) as response:
                return response.status, await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return 0, f"{type(exc).__name__}: {exc}".encode()


PROXIED = ("/table/",)
"""Paths of the parent's web server answered by the child: Faust's own views of table state
(``/table/<name>/<key>/``) — every table is the stream role's."""


def proxy(child: Child) -> Any:
    """An aiohttp middleware answering :data:`PROXIED` paths from the child (install it after the
    token guard, ``streams.web.auth``, so that the guard runs first; the token is passed on)."""
    from aiohttp import web

    @web.middleware
    async def forward(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(PROXIED):
            return await handler(request)
        headers = {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
        try:
            timeout = aiohttp.ClientTimeout(total=PROBE_SECONDS)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.request(request.method, child.base + request.path_qs, headers=headers) as answer:
                    body = await answer.read()
                    kind = answer.headers.get("Content-Type", "application/json")
                    return web.Response(status=answer.status, body=body, headers={"Content-Type": kind})
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return web.json_response({"error": f"the stream process does not answer: {type(exc).__name__}"},
                                     status=502)

    return forward


def _key(sample: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample.name, tuple(sorted(sample.labels.items()))


KEEP_FIRST = frozenset({"process_start_time_seconds", "process_max_fds", "python_info"})
"""Series both processes have whose sum means nothing: the parent's is kept."""


def merge(own: bytes, other: bytes) -> bytes:
    """Two processes' series as one exposition: a series both have is summed (counters,
    histograms and the gauges this tracker exports are all additive over disjoint work), except
    the few in :data:`KEEP_FIRST`; the HELP and TYPE of a family come from whichever has it."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Any]] = {}
    for text in (own, other):
        for family in text_string_to_metric_families(text.decode()):
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type,
                                                              family.unit))
            samples = values.setdefault(family.name, {})
            for sample in family.samples:
                key = _key(sample)
                if key in samples:
                    if sample.name not in KEEP_FIRST:
                        samples[key] = samples[key]._replace(value=samples[key].value + sample.value)
                else:
                    samples[key] = sample
            merged.samples = list(samples.values())
    registry = CollectorRegistry(auto_describe=False)

    class _Merged:
        def collect(self) -> list[Metric]:
            return list(families.values())

    registry.register(_Merged())  # type: ignore[arg-type]
    return generate_latest(registry)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux ``/proc``; for tests and the benchmark)."""
    found: list[int] = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(p) for p in path.read_text().split())
        except OSError:
            continue
    return [p for p in found if alive(p)]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` ended within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)
