// /ui/alerts: the alerts feed (the `alerts` report), filtered by rule and account. Trackers
// without that report show an empty state instead of an error.

import {
  alertsOrNull, channelColor, clear, deliveryCell, empty, errorBox, fmtTime, h, initPage, ready, swatch, table,
} from "./common.js";

const main = initPage("alerts");
const params = new URLSearchParams(location.search);
const state = { rule: params.get("rule") || "", account: params.get("account") || "" };

const ruleSelect = h("select", { id: "rule", name: "rule", "aria-label": "rule" }, h("option", { value: "" }, "all rules"));
const accountInput = h("input", { type: "search", id: "account", name: "account", value: state.account,
                                  placeholder: "account id", "aria-label": "account" });
const form = h("form", { class: "toolbar", id: "alert-filters" },
  h("label", {}, "rule ", ruleSelect), h("label", {}, "account ", accountInput),
  h("button", { type: "submit" }, "Filter"));
const feed = h("div", { id: "feed" });
main.append(h("h1", {}, "Alerts"), form, feed);

function setRules(rules) {
  const known = new Set([...rules, state.rule].filter(Boolean));
  clear(ruleSelect).append(h("option", { value: "" }, "all rules"),
    [...known].sort().map((r) => h("option", { value: r, selected: r === state.rule }, r)));
}

function path(value) {
  let steps = value;
  if (typeof steps === "string") {
    try {
      steps = JSON.parse(steps); // the report may hand the path over as JSON text
    } catch (_) {
      return steps;
    }
  }
  if (!Array.isArray(steps) || !steps.length) return "";
  return h("span", { class: "path" }, steps.map((p) => h("span", { class: "chip" }, swatch(channelColor(p.channel)), p.channel)));
}

function render(rows) {
  clear(feed);
  if (rows === null) {
    feed.append(empty("No alerts: alerting is not enabled on this tracker (no alerts report).", { id: "alerts-empty" }));
    return;
  }
  if (!rows.length) {
    feed.append(empty(state.rule || state.account ? "No alerts match these filters." : "No alerts yet.",
                      { id: "alerts-empty" }));
    return;
  }
  feed.append(table([
    { key: "at", label: "time", fmt: fmtTime },
    { key: "rule", label: "rule" },
    { key: "account_id", label: "account",
      fmt: (v) => h("a", { href: `/ui/account/${encodeURIComponent(v)}`, class: "account-link" }, v) },
    { key: "owner", label: "owner" },
    { key: "summary", label: "summary" },
    { key: "delivery", label: "delivery", fmt: deliveryCell },
    { key: "path", label: "recent path", fmt: path },
  ], rows, { id: "alerts-table" }));
}

async function load(first = false) {
  main.dataset.state = "loading";
  try {
    if (first) {
      const all = await alertsOrNull({});
      setRules(all ? [...new Set(all.map((r) => r.rule))] : []);
      if (!state.rule && !state.account) {
        render(all);
        ready(main);
        return;
      }
    }
    render(await alertsOrNull({ rule: state.rule, account: state.account }));
    ready(main);
  } catch (err) {
    clear(feed).append(errorBox(err));
    ready(main, "error");
  }
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.rule = ruleSelect.value;
  state.account = accountInput.value.trim();
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(state)) {
    if (v) url.searchParams.set(k, v);
    else url.searchParams.delete(k);
  }
  history.replaceState(null, "", url.pathname + url.search);
  load();
});
ruleSelect.addEventListener("change", () => form.requestSubmit());

load(true);
