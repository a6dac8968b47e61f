// /ui/: find an account by name, domain or id (the `search` report); without a query, the
// most recently active accounts.

import { api, clear, empty, errorBox, fmtNum, fmtTime, h, initPage, ready, report, table } from "./common.js";

const main = initPage("search");
const params = new URLSearchParams(location.search);
const input = h("input", { type: "search", id: "search-input", name: "q", value: params.get("q") || "",
                           placeholder: "Account name, domain or id (e.g. acme)", autocomplete: "off",
                           "aria-label": "search accounts" });
const results = h("div", { id: "results" });
const form = h("form", { id: "search-form", class: "toolbar" }, input, h("button", { type: "submit" }, "Search"));
main.append(h("h1", {}, "Accounts"), form, results);

const accountLink = (id, row) => h("a", { href: `/ui/account/${encodeURIComponent(id)}`, class: "account-link",
                                          "data-account": id },
  row.name ? [h("strong", {}, row.name), h("span", { class: "muted" }, ` ${id}`)] : id);

async function run(q) {
  clear(results).append(h("p", { class: "muted" }, "Searching…"));
  main.dataset.state = "loading";
  try {
    if (q) {
      const rows = await report("search", { q });
      clear(results).append(h("h2", {}, `Accounts matching “${q}”`));
      results.append(rows.length ? table([
        { key: "account_id", label: "account", fmt: accountLink },
        { key: "domain", label: "domain" },
        { key: "stage", label: "stage" },
        { key: "score", label: "score", num: true, fmt: (v) => fmtNum(v) },
        { key: "events", label: "events", num: true },
        { key: "last_event", label: "last event", fmt: fmtTime },
        { key: "merged_into", label: "merged into",
          fmt: (v) => (v ? h("a", { href: `/ui/account/${encodeURIComponent(v)}` }, v) : "") },
      ], rows, { id: "search-results" }) : empty(`No account id, name or domain contains “${q}”.`, { id: "no-results" }));
    } else {
      const body = await api("/api/v1/accounts");
      clear(results).append(h("h2", {}, "Most recently active accounts"));
      results.append(body.accounts.length ? table([
        { key: "account_id", label: "account", fmt: accountLink },
        { key: "events", label: "events", num: true },
        { key: "last_event", label: "last event", fmt: fmtTime },
      ], body.accounts, { id: "recent-accounts" }) : empty("No accounts yet.", { id: "no-results" }));
    }
    ready(main);
  } catch (err) {
    clear(results).append(errorBox(err));
    ready(main, "error");
  }
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = input.value.trim();
  const url = new URL(location.href);
  if (q) url.searchParams.set("q", q);
  else url.searchParams.delete("q");
  history.replaceState(null, "", url.pathname + url.search);
  run(q);
});

run(input.value.trim());
