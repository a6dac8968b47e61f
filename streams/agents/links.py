"""Sending identity links from the identity stages (one place for the key and the version)."""

from __future__ import annotations

import time
from typing import Iterable

import faust

from schemas.identity import IdentityLink
from streams.agents.batching import Outbox


async def send_links(topic: faust.TopicT, links: Iterable[IdentityLink]) -> None:
    """Send each link keyed ``kind:src``, versioned by processing time (newest version wins)."""
    version = time.time_ns() // 1000
    for link in links:
        await topic.send(key=f"{link.kind}:{link.src}".encode(),
                         value=link.model_copy(update={"version": version}).to_bytes())


def add_links(box: Outbox, topic: str, links: Iterable[IdentityLink]) -> None:
    """The batch form of :func:`send_links`: the links go out with the batch's other outputs."""
    version = time.time_ns() // 1000
    for link in links:
        box.add(topic, f"{link.kind}:{link.src}".encode(), link.model_copy(update={"version": version}).to_bytes())
