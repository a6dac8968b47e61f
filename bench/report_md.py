"""``latest.md``: the benchmark report as a short Markdown summary."""

from __future__ import annotations

from typing import Any


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if value < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(r: dict[str, Any]) -> str:
    m, f, p, t = r["machine"], r["floors"], r["pipeline"], r["timeline_query"]
    lat, rss, rst = p["latency"], p["rss"], p["restart"]
    e2q = lat["event_to_queryable_s"]
    e2a = lat.get("event_to_alert_s")
    lines = [
        f"# Benchmark ({r['mode']})",
        "",
        f"{m['cores']} cores, Python {m['python']}, commit `{m['commit'][:12]}`"
        f"{' (dirty worktree)' if m['dirty_worktree'] else ''}; load average {m['load_avg_at_start']} at start, "
        f"{m['load_avg_at_end']} at end; wall time {_n(r['wall_s'])} s. Worker: {p['worker_env']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| floor: kafka-python consume | {_n(f['kafka']['consume']['per_s'])} events/s ({_n(f['kafka']['consume']['events'])} events) |",
        f"| floor: kafka-python produce (acks=all) | {_n(f['kafka']['produce']['per_s'])} events/s |",
        *([f"| floor: aiokafka consume (`getmany`, Faust's client) | {_n(f['kafka']['aiokafka_consume']['per_s'])} events/s |"]
          if "aiokafka_consume" in f["kafka"] else []),
        *([f"| floor: trivial Faust agent (counts only; per event / `take(1000)`) | "
           f"{_n(f['kafka']['faust_agent']['per_s'])} / {_n(f['kafka']['faust_agent_take']['per_s'])} events/s |"]
          if "faust_agent" in f["kafka"] else []),
        f"| floor: parse + validate (`schemas.decode.decode`) | {_n(f['parse_validate']['per_s'])} events/s |",
        f"| floor: identity rules in one process (no Kafka) | {_n(f['identity_rules']['per_s'])} events/s |",
        f"| floor: chDB insert (row mapper + `Store.insert`, {_n(f['chdb_insert']['batch_rows'])}-row blocks) | {_n(f['chdb_insert']['per_s'])} rows/s |",
        f"| pipeline sustained (drain of a {_n(p['throughput']['events'])}-event backlog → queryable) | {_n(p['throughput']['per_s'])} events/s ({p['throughput'].get('cpu_ms_per_event', '?')} ms CPU/event) |",
        *([f"| pipeline while producing (produce → queryable, {_n(p['throughput_live']['events'])} events) | {_n(p['throughput_live']['per_s'])} events/s |"] if "throughput_live" in p else []),
        *([f"| pipeline sustained into a store of {_n(p['throughput_big_store']['store_events'])} events (drain of {_n(p['throughput_big_store']['events'])} into a copy of the timeline store) | {_n(p['throughput_big_store']['per_s'])} events/s ({p['throughput_big_store'].get('cpu_ms_per_event', '?')} ms CPU/event) |"] if "throughput_big_store" in p else []),
        f"| ratio to the lowest floor ({p['vs_lowest_floor']['floor']}) | {_n(p['vs_lowest_floor']['ratio'])} |",
        *([f"| ratio to the trivial Faust agent | {_n(p['vs_faust_agent']['ratio'])} |"] if "vs_faust_agent" in p else []),
        f"| event → queryable at {_n(lat['offered_per_s'])} events/s offered | p50 {_n(e2q['p50'])} s, p99 {_n(e2q['p99'])} s (n={_n(e2q['n'])}; FIFO-count mean {_n(lat['fifo_count_check_s']['mean'])} s) |",
        *([f"| event → queryable at {_n(p['latency_80']['offered_per_s'])} events/s offered (80% of the drain rate; "
           f"the harness's producer shares the cores) | p50 {_n(p['latency_80']['event_to_queryable_s']['p50'])} s, "
           f"p99 {_n(p['latency_80']['event_to_queryable_s']['p99'])} s (n={_n(p['latency_80']['event_to_queryable_s']['n'])}); "
           f"event → alert p99 {_n(p['latency_80']['event_to_alert_s']['p99'])} s |"] if "latency_80" in p else []),
        *([f"| event → alert (`channel_bounce`: the digital ↔ 1:1 switch; alert sent − touch received) at the same load | "
           f"p50 {_n(e2a['p50'])} s, p99 {_n(e2a['p99'])} s (n={_n(e2a['n'])} of {_n(e2a['alerts'])} alerts; the others: "
           f"other rules, timer rules fire late by design) |"] if e2a else []),
        f"| account timeline query ({_n(t['events'])} events in store, {_n(t['rows_per_timeline_mean'])} rows/answer) | p50 {_n(t['query_s']['p50'])} s, p99 {_n(t['query_s']['p99'])} s (n={_n(t['query_s']['n'])}) |",
        *([f"| store: re-resolving 1,000 random stored events on that store (after each timeline batch) | p50 {_n(t['refresh_1000_s']['p50'])} s (n={_n(t['refresh_1000_s']['n'])}) |"] if "refresh_1000_s" in t else []),
        *([f"| the same accounts resolved at query time (keyed look-ups; what the API served before migration 14) | p50 {_n(t['query_time_resolution_s']['p50'])} s, p99 {_n(t['query_time_resolution_s']['p99'])} s; same events: {t['timelines_agree']} accounts |"] if "query_time_resolution_s" in t else []),
        f"| journey page data: its 5 calls one after another (timeline, stages, snapshot, scores, alerts) | "
        f"p50 {_n(t['page_s']['p50'])} s, p99 {_n(t['page_s']['p99'])} s; slowest call p50 "
        f"{_n(t['page_slowest_s']['p50'])} s, p99 {_n(t['page_slowest_s']['p99'])} s (n={_n(t['page_s']['n'])}) |",
        f"| worker RSS idle | {_n(rss['idle_mb'])} MB |",
    ]
    # the cross-team reports over the whole timeline store (issue #18's goal: each ≤ 1 s p50)
    reports = t.get("reports_s") or {}
    if reports:
        worst = max(reports, key=lambda name: reports[name]["p50"])
        lines.insert(lines.index(f"| worker RSS idle | {_n(rss['idle_mb'])} MB |"),
                     f"| cross-team reports on the same store (p50 of {_n(reports[worst]['n'])} runs each) | "
                     + ", ".join(f"{name} {_n(v['p50'])} s" for name, v in reports.items())
                     + f"; slowest: {worst} |")
    for step in rss["steps"]:
        lines.append(f"| worker RSS after {_n(step['events'])} events / {_n(step['accounts'])} accounts | "
                     f"{_n(step['rss_mb'])} MB ({_n(step['kb_per_account'])} kB/account) |")
    scale = p.get("state_scale")
    if scale:
        first = rss.get("marginal_kb_per_account_first_accounts")
        lines.append(f"| worker RSS marginal, first accounts (the steps above: warm-up) | {_n(first)} kB per extra account |")
        for step in scale["steps"]:
            lines.append(f"| {_n(step['accounts'])} accounts of state ({_n(step['table_disk_mb'])} MB of tables): "
                         f"restart → caught up ({_n(scale['backlog_events'])}-event backlog) / RSS | "
                         f"{_n(step['to_caught_up_s'])} s / {_n(step['rss_mb'])} MB (stream process "
                         f"{_n(step['stream_rss_mb'])} MB) |")
        between = rss.get("marginal_between_accounts") or []
        lines.append(f"| worker RSS marginal between {' and '.join(_n(a) for a in between)} accounts of state "
                     f"(bench/state_scale.py) | {_n(rss['marginal_kb_per_account'])} kB per extra account |")
    else:
        lines.append(f"| worker RSS marginal | {_n(rss['marginal_kb_per_account'])} kB per extra account |")
    lines += [
        f"| restart → API / → caught up ({_n(rst['backlog_events'])}-event backlog) | {_n(rst['to_api_s'])} s / {_n(rst['to_caught_up_s'])} s |",
        "",
        "Latency method: Kafka CreateTime of each event (stored as `received_at`) vs the first 100 ms sample of "
        "the worker's committed timeline offsets past the event (the store acks a block only after its insert): "
        "an upper bound within the sample + commit interval. See `bench/pipeline.py`.",
        "",
    ]
    return "\n".join(lines)
