"""Synthetic B2B buyer journeys with ground truth — seeded, streamed, constant memory.

    python -m bench.synth --events 100000 --seed 1 --out DIR   # DIR/events.ndjson, truth.tsv, meta.json

Each account (a company domain; ``crm_fraction`` of them also have a CRM account id) has a few
contacts with personas. Web contacts browse anonymously (home, blog, pricing, comparison; UTM
ads/email campaigns; whitepapers), fill a form (``identify`` with anonymousId, userId and
email) within the 30-day stitching window, get a ``group`` call (CRM accounts), keep browsing,
and some use a second device that they later log in on. The CRM side adds lead status changes
(mql → accepted/rejected with a reason), SDR calls, AE meetings and emails, and opportunities.

Ground truth (``truth.tsv``: event id, type, account) follows the documented deterministic rules:

* An account's key is its CRM account id when it has one, else ``domain:<domain>``. Every CRM
  account gets a CRM record naming both a work email of its domain and the CRM id (the lead of
  its first contact), so the tracker merges ``domain:<domain>`` into the CRM account
  (``account_merge``) and all domain-derived events end up in the CRM account.
* Contacts who sign up with a free-mail address belong to no account by their email. In CRM
  accounts they always get a ``group`` call (so they are attributable); in domain-only accounts
  nothing ties them to the company: their events' truth is ``""`` unless the event names an
  account itself.
* ``anonymous_fraction`` of the devices never identify: their events' truth is ``""``.
* ``long_thread_fraction`` of CRM accounts start with a long prospecting email thread (65–90
  emails naming only the contact's work email) before the CRM account exists. By the rules the
  domain still merges into the CRM account once a CRM record names both; truth says so.
* No shared devices and no job changes: every person belongs to one account for all time.
* ``shuffle_window`` > 0 delivers events late and out of order (a bounded random shuffle); the
  rules are order-independent, so the truth does not change.

Order: accounts are generated one by one and ``interleave`` of them are merged by event time,
so the memory held is a few accounts' events, whatever the total.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from random import Random
from typing import Any, Iterator

import orjson

from schemas.decode import validate

DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
SITE = "https://www.tracker.example"

COMPANY_WORDS = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell", "cyberdyne",
                 "soylent", "wonka", "vandelay", "pied", "dunder", "gringotts", "nakatomi", "oscorp", "vehement"]
COMPANY_SUFFIXES = ["", "-labs", "-analytics", "-systems", "-group", "-health", "-logistics", "-capital"]
TLDS = ["com", "com", "com", "io", "de", "co.uk", "fr"]
FIRST = ["ana", "ben", "chloe", "dev", "eva", "farid", "grace", "hiro", "ines", "jon", "kim", "li", "maya",
         "noah", "olga", "priya", "quinn", "raj", "sara", "tom", "uma", "victor", "wen", "yusuf", "zoe"]
LAST = ["garcia", "smith", "muller", "rossi", "tanaka", "kowalski", "nguyen", "okafor", "silva", "dubois",
        "khan", "larsen", "novak", "cohen", "patel", "schmidt", "moreau", "ivanova", "lee", "brown"]
FREE_MAIL = ["gmail.com", "outlook.com", "yahoo.com", "proton.me"]
PERSONAS = {
    "economic_buyer": ["VP Marketing", "CMO", "VP Revenue", "CFO"],
    "champion": ["Marketing Ops Manager", "Head of Growth", "Director Demand Generation"],
    "technical_evaluator": ["Head of Data", "Solutions Architect", "Data Engineer"],
    "user": ["Marketing Analyst", "Content Marketer", "SDR Manager"],
    "procurement": ["Procurement Manager"],
}
PAGES = [("/", "Home"), ("/blog/buyer-journeys", "Blog: buyer journeys"), ("/blog/attribution", "Blog: attribution"),
         ("/pricing", "Pricing"), ("/compare/tracker-vs-spreadsheets", "Comparison"), ("/product", "Product")]
CAMPAIGNS = [{"source": "linkedin", "medium": "paid_social", "name": "abm-q3"},
             {"source": "google", "medium": "cpc", "name": "brand"},
             {"source": "newsletter", "medium": "email", "name": "nurture-3"},
             {"source": "hubspot", "medium": "email", "name": "webinar-invite"}]
WHITEPAPERS = ["The B2B buyer journey", "Attribution without guesswork", "Sales and marketing alignment"]
WEBINARS = ["Journeys 101", "From MQL to revenue"]
REJECT_REASONS = ["no budget this fiscal year", "student, not a buyer", "competitor", "bad timing", "no authority"]


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and mix of the generated set. ``events`` is reached at an account boundary (≥)."""

    events: int = 10_000
    seed: int = 1
    start: datetime = DEFAULT_START
    crm_fraction: float = 0.6
    anonymous_fraction: float = 0.15
    free_mail_fraction: float = 0.08
    second_device_fraction: float = 0.3
    gated_fraction: float = 0.3
    long_thread_fraction: float = 0.02
    shuffle_window: int = 0
    interleave: int = 16


@dataclass(frozen=True, slots=True)
class Synth:
    """One generated inbound event and the account it must be attributed to ('' = none)."""

    obj: dict[str, Any]
    event_id: str
    event_type: str
    account: str
    t: int


@dataclass
class _Contact:
    email: str
    first: str
    last: str
    persona: str
    title: str
    user_id: str
    crm_contact_id: str
    free_mail: bool
    truth: str


def iso(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Account:
    """Builds one account's events (a few hundred at most) with their truth."""

    def __init__(self, rng: Random, cfg: SynthConfig, index: int) -> None:
        self.rng, self.cfg = rng, cfg
        self.name = rng.choice(COMPANY_WORDS) + rng.choice(COMPANY_SUFFIXES)
        self.domain = f"{self.name}{index}.{rng.choice(TLDS)}"
        self.crm_id = f"001{rng.getrandbits(48):012X}" if rng.random() < cfg.crm_fraction else ""
        self.key = self.crm_id or f"domain:{self.domain}"
        self.events: list[Synth] = []
        self.t0 = int((cfg.start - EPOCH).total_seconds() * 1000) - rng.randint(180, 540) * DAY
        self.identified_devices = 0

    # -- ids and emitting ------------------------------------------------------------------
    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(self, obj: dict[str, Any], t: int, truth: str) -> None:
        if "messageId" in obj:
            event_id = obj["messageId"]
        else:  # CRM records: the deterministic id the tracker derives from the natural key
            event_id = validate(obj).messageId
        self.events.append(Synth(obj, event_id, obj["type"], truth, t))

    def segment(self, kind: str, t: int, ids: dict[str, str], truth: str, **fields: Any) -> None:
        obj = {"type": kind, "messageId": self.uid(), "timestamp": iso(t), **ids, **fields}
        obj.setdefault("context", {})["userAgent"] = "Mozilla/5.0 (synthetic)"
        self.emit(obj, t, truth)

    # -- web -------------------------------------------------------------------------------
    def session(self, t: int, ids: dict[str, str], truth: str, campaign: bool = True) -> int:
        utm = self.rng.choice(CAMPAIGNS) if campaign and self.rng.random() < 0.4 else None
        for i in range(self.rng.randint(1, 4)):
            path, title = PAGES[0] if i == 0 and utm else self.rng.choice(PAGES)
            ctx: dict[str, Any] = {"page": {"path": path, "url": SITE + path, "title": title}}
            if utm and i == 0:
                ctx["campaign"] = dict(utm)
            self.segment("page", t, ids, truth, name=title, properties={"path": path, "url": SITE + path},
                         context=ctx)
            t += self.rng.randint(20, 300) * 1000
        return t

    def device_journey(self, c: _Contact, device: str, t_first: int, t_id: int, gated: bool) -> None:
        """Anonymous sessions on ``device`` before its identification at ``t_id``."""
        n = self.rng.randint(1, 3)
        times = sorted([t_first] + [self.rng.randint(t_first, t_id - 2 * HOUR) for _ in range(n - 1)])
        for t in times:
            self.session(t, {"anonymousId": device}, c.truth)
        if gated:  # gated content: the form sends the email with the anonymous event
            self.segment("track", t_id - 2 * MIN, {"anonymousId": device}, c.truth, event="Whitepaper Downloaded",
                         properties={"title": self.rng.choice(WHITEPAPERS), "email": c.email})
        traits = {"email": c.email, "firstName": c.first.title(), "lastName": c.last.title(), "title": c.title,
                  "company": self.name.title(), "persona": c.persona}
        self.segment("identify", t_id, {"anonymousId": device, "userId": c.user_id}, c.truth, traits=traits)
        self.identified_devices += 1

    def web(self, c: _Contact, t_first: int) -> int:
        """A web contact's whole digital journey; returns the time of the form fill."""
        rng = self.rng
        device = self.uid()
        t_id = t_first + rng.randint(1, 20) * DAY + rng.randint(0, DAY)
        self.device_journey(c, device, t_first, t_id, rng.random() < self.cfg.gated_fraction)
        if self.crm_id and (c.free_mail or rng.random() < 0.7):
            self.segment("group", t_id + 30_000, {"userId": c.user_id}, self.key, groupId=self.crm_id,
                         traits={"name": self.name.title(), "domain": self.domain})
        for _ in range(rng.randint(1, 5)):
            t = t_id + rng.randint(1, 60 * 24) * HOUR
            r = rng.random()
            ids = ({"anonymousId": device} if r < 0.2 else
                   {"userId": c.user_id} if r < 0.5 else {"anonymousId": device, "userId": c.user_id})
            self.session(t, ids, c.truth)
        if rng.random() < 0.4:
            self.segment("track", t_id + rng.randint(2, 30) * DAY, {"userId": c.user_id}, c.truth,
                         event="Webinar Attended",
                         properties={"webinar": rng.choice(WEBINARS), "minutes": rng.randint(5, 60)})
        if rng.random() < self.cfg.second_device_fraction:
            phone = self.uid()
            t2 = t_id + rng.randint(1, 40) * DAY
            self.device_journey(c, phone, t2, t2 + rng.randint(1, 20) * DAY, gated=False)
        return t_id

    def anonymous_visitor(self) -> None:
        device = self.uid()
        for _ in range(self.rng.randint(1, 3)):
            self.session(self.t0 + self.rng.randint(0, 140) * DAY + self.rng.randint(0, DAY),
                         {"anonymousId": device}, "")

    # -- CRM and sales ---------------------------------------------------------------------
    def contact(self, k: int, used: set[str]) -> _Contact:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        persona = rng.choice(list(PERSONAS)) if k else "champion"
        free = k > 0 and rng.random() < self.cfg.free_mail_fraction
        if free:
            email = f"{first}.{last}.{rng.getrandbits(32):08x}@{rng.choice(FREE_MAIL)}"
        else:
            local, n = f"{first}.{last}", 1
            while local in used:
                n += 1
                local = f"{first}.{last}{n}"
            used.add(local)
            email = f"{local}@{self.domain}"
        crm_contact = f"003{rng.getrandbits(48):012X}" if self.crm_id else ""
        truth = self.key if (not free or self.crm_id) else ""
        return _Contact(email, first, last, persona, rng.choice(PERSONAS[persona]), f"u-{rng.getrandbits(40):010x}",
                        crm_contact, free, truth)

    def conversation(self, t: int, channel: str, role: str, rep: str, people: list[_Contact], outcome: str,
                     subject: str, *, inbound: bool = False, email_only: bool = False) -> None:
        rng = self.rng
        body: dict[str, Any] = {
            "type": "conversation", "conversationId": f"{channel}-{rng.getrandbits(64):016x}", "channel": channel,
            "repId": rep, "repRole": role, "direction": "inbound" if inbound else "outbound", "startedAt": iso(t),
            "outcome": outcome, "subject": subject, "source": "salesforce" if self.crm_id else "outreach",
        }  # fmt: skip
        if channel != "email":
            body["durationSeconds"] = rng.randint(30, 3600)
        emails = [c.email for c in people]
        v = rng.random()
        if not self.crm_id or email_only or 0.45 <= v < 0.7:
            body["contactEmails"] = emails
        elif v < 0.45:
            body.update(contactEmails=emails, crmContactId=people[0].crm_contact_id, crmAccountId=self.crm_id)
        elif v < 0.85 and channel == "meeting":
            body["crmAccountId"] = self.crm_id
        else:
            body.update(crmContactId=people[0].crm_contact_id, crmAccountId=self.crm_id)
        self.emit(body, t, self.key if "crmAccountId" in body else people[0].truth)

    def sdr_sequence(self, c: _Contact, t: int, sdr: str, steps: int) -> int:
        for i in range(steps):
            t += self.rng.randint(1, 5) * DAY + self.rng.randint(0, 8) * HOUR
            last = i == steps - 1
            if self.rng.random() < 0.3:
                self.conversation(t, "email", "SDR", sdr, [c], "replied" if last else "other", "Quick question")
            else:
                outcome = "meeting_booked" if last else self.rng.choice(["no_answer", "voicemail", "connected"])
                self.conversation(t, "call", "SDR", sdr, [c], outcome, "Discovery call")
        return t

    def lead(self, c: _Contact, t: int, sdr: str) -> int | None:
        """MQL, then accepted (and worked by the SDR) or rejected with a reason; the accept time."""
        rng = self.rng
        base: dict[str, Any] = {"type": "lead_status", "leadId": f"00Q{rng.getrandbits(48):012X}", "email": c.email,
                                "leadSource": "web form"}
        if self.crm_id:
            base.update(crmContactId=c.crm_contact_id, crmAccountId=self.crm_id)
        truth = self.key if self.crm_id else c.truth
        self.emit({**base, "status": "mql", "changedAt": iso(t), "changedBy": "marketing-automation"}, t, truth)
        t += rng.randint(1, 3) * DAY
        if rng.random() < 0.35:
            self.emit({**base, "status": "rejected", "reason": rng.choice(REJECT_REASONS), "changedAt": iso(t),
                       "changedBy": sdr}, t, truth)
            return None
        self.emit({**base, "status": "accepted", "changedAt": iso(t), "changedBy": sdr}, t, truth)
        return self.sdr_sequence(c, t, sdr, rng.randint(1, 4))

    def long_thread(self, c: _Contact, before: int) -> None:
        """A long prospecting email thread synced from an inbox (email only) before the CRM
        account existed: many touches of one person that name only the email domain."""
        sdr = f"rep-sdr-{self.rng.randint(1, 20)}"
        for i in range(self.rng.randint(65, 90)):
            t = before - self.rng.randint(1, 30 * 24) * HOUR
            self.conversation(t, "email", "SDR", sdr, [c], self.rng.choice(["replied", "other"]), "Intro",
                              inbound=i % 2 == 1, email_only=True)

    def opportunity(self, t: int, contacts: list[_Contact]) -> None:
        rng = self.rng
        ae = f"rep-ae-{rng.randint(1, 12)}"
        base = {"type": "opportunity", "opportunityId": f"006{rng.getrandbits(48):012X}", "crmAccountId": self.crm_id,
                "amount": f"{rng.randint(8, 400) * 1000}.00", "currency": rng.choice(["EUR", "USD"]), "ownerId": ae}
        self.emit({**base, "action": "created", "stage": "Discovery", "changedAt": iso(t)}, t, self.key)
        for stage in ["Demo", "Proposal", "Negotiation"][: rng.randint(1, 3)]:
            committee = rng.sample(contacts, min(len(contacts), rng.randint(1, 3)))
            self.conversation(t + rng.randint(1, 4) * DAY, "meeting", "AE", ae, committee, "meeting_held", stage)
            for _ in range(rng.randint(0, 3)):
                who = rng.choice(contacts)
                self.conversation(t + rng.randint(1, 10) * DAY, "email", "AE", ae, [who],
                                  rng.choice(["replied", "other"]), f"Re: {stage}", inbound=rng.random() < 0.4)
            t += rng.randint(5, 15) * DAY
            self.emit({**base, "action": "stage_changed", "stage": stage, "changedAt": iso(t)}, t, self.key)
        if rng.random() < 0.8:
            t += rng.randint(1, 15) * DAY
            won = rng.random() < 0.45
            close = {**base, "action": "closed_won" if won else "closed_lost", "stage": "Closed", "changedAt": iso(t)}
            if not won:
                close["reason"] = rng.choice(["price", "went with a competitor", "no decision"])
            self.emit(close, t, self.key)

    def build(self) -> list[Synth]:
        rng = self.rng
        size = rng.choices([1, 2, 3, 4, 5, 6, 8], weights=[10, 20, 25, 20, 12, 8, 5])[0]
        used: set[str] = set()
        contacts = [self.contact(k, used) for k in range(size)]
        sdr = f"rep-sdr-{rng.randint(1, 20)}"
        worked: list[int] = []
        for k, c in enumerate(contacts):
            t_first = self.t0 + rng.randint(0, 60) * DAY + rng.randint(0, DAY)
            if k == 0 and self.crm_id and rng.random() < self.cfg.long_thread_fraction:
                self.long_thread(c, t_first)
            if k == 0 or c.free_mail or rng.random() < 0.7:
                t_id = self.web(c, t_first)
                # contact 0's lead names the CRM account and a work email: the domain → CRM merge
                if k == 0 or rng.random() < 0.7:
                    done = self.lead(c, t_id + 10 * MIN, sdr)
                    if done is not None:
                        worked.append(done)
            else:  # sales-sourced: outbound sequence, no web visit
                worked.append(self.sdr_sequence(c, t_first, sdr, rng.randint(1, 4)))
        if self.crm_id and worked and rng.random() < 0.6:
            self.opportunity(min(worked) + rng.randint(1, 10) * DAY, contacts)
        share = self.cfg.anonymous_fraction
        expected = self.identified_devices * share / (1 - share) if share < 1 else 0
        for _ in range(int(expected) + (rng.random() < expected - int(expected))):
            self.anonymous_visitor()
        self.events.sort(key=lambda e: e.t)
        return self.events


def generate(cfg: SynthConfig) -> Iterator[Synth]:
    """The events of whole accounts until at least ``cfg.events``, ``interleave`` accounts at a time."""
    rng = Random(cfg.seed)
    emitted = index = 0
    while emitted < cfg.events:
        chunk: list[list[Synth]] = []
        while len(chunk) < cfg.interleave and emitted < cfg.events:
            events = _Account(rng, cfg, index).build()
            index += 1
            emitted += len(events)
            chunk.append(events)
        merged = heapq.merge(*chunk, key=lambda e: e.t)
        yield from (_shuffled(merged, cfg.shuffle_window, Random(cfg.seed + index)) if cfg.shuffle_window else merged)


def _shuffled(events: Iterator[Synth], window: int, rng: Random) -> Iterator[Synth]:
    """Late and out-of-order delivery: a bounded random shuffle (``window`` events held)."""
    held: list[Synth] = []
    for event in events:
        held.append(event)
        if len(held) >= window:
            i = rng.randrange(len(held))
            held[i], held[-1] = held[-1], held[i]
            yield held.pop()
    rng.shuffle(held)
    yield from held


def write(cfg: SynthConfig, out: Path) -> dict[str, Any]:
    """Write ``events.ndjson``, ``truth.tsv`` (event_id, type, account) and ``meta.json``; return meta."""
    out.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, int] = {}
    accounts: set[str] = set()
    total = attributable = 0
    with (out / "events.ndjson").open("wb") as events, (out / "truth.tsv").open("w") as truth:
        for s in generate(cfg):
            events.write(orjson.dumps(s.obj) + b"\n")
            truth.write(f"{s.event_id}\t{s.event_type}\t{s.account}\n")
            total += 1
            attributable += bool(s.account)
            by_type[s.event_type] = by_type.get(s.event_type, 0) + 1
            if s.account:
                accounts.add(s.account)
    meta = {"config": {**asdict(cfg), "start": iso(int((cfg.start - EPOCH).total_seconds() * 1000))},
            "events": total, "attributable": attributable, "accounts": len(accounts), "by_type": by_type}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def read_truth(path: Path) -> dict[str, tuple[str, str]]:
    """event_id → (event type, true account) from a ``truth.tsv``."""
    out = {}
    with path.open() as f:
        for line in f:
            event_id, kind, account = line.rstrip("\n").split("\t")
            out[event_id] = (kind, account)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=10_000, help="at least this many events (whole accounts)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--start", default=DEFAULT_START.isoformat(), help="every event happens before this time")
    p.add_argument("--crm-fraction", type=float, default=SynthConfig.crm_fraction)
    p.add_argument("--anonymous-fraction", type=float, default=SynthConfig.anonymous_fraction,
                   help="share of devices that never identify (truth '')")
    p.add_argument("--long-thread-fraction", type=float, default=SynthConfig.long_thread_fraction)
    p.add_argument("--shuffle-window", type=int, default=0, help="deliver out of order within this many events")
    args = p.parse_args(argv)
    cfg = SynthConfig(events=args.events, seed=args.seed, start=datetime.fromisoformat(args.start),
                      crm_fraction=args.crm_fraction, anonymous_fraction=args.anonymous_fraction,
                      long_thread_fraction=args.long_thread_fraction, shuffle_window=args.shuffle_window)
    meta = write(cfg, args.out)
    print(json.dumps({k: v for k, v in meta.items() if k != "config"}), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
