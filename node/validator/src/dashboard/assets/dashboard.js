// SCBE Fleet dashboard: reads /api/state once, then follows /api/stream (server-sent events).
// Everything shown is set as text, never parsed as HTML: event details and reasons are
// requesters' and agents' words.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);
let updates = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "title" || k === "scope") e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function replaceRows(id, rows, empty, columns) {
  const body = document.getElementById(id);
  if (rows.length === 0) rows = [el("tr", {}, el("td", { colSpan: columns, class: "muted" }, empty))];
  body.replaceChildren(...rows);
}

const SVG = "http://www.w3.org/2000/svg";

// A sparkline of `values` (oldest first) as an image with a text alternative.
function sparkline(label, values, format) {
  const w = 110, h = 26;
  const wrap = el("span", { class: "spark" });
  if (values.length === 0) return el("span", { class: "muted" }, "no reports");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  const first = values[0], last = values[values.length - 1];
  svg.setAttribute("aria-label", `${label} over the last ${values.length} reports: from ${format(first)} to ${format(last)}`);
  const lo = Math.min(...values), hi = Math.max(...values);
  const span = hi - lo || 1;
  const points = values.map((v, i) => {
    const x = values.length === 1 ? w / 2 : (i * (w - 2)) / (values.length - 1) + 1;
    const y = h - 2 - ((v - lo) / span) * (h - 4);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  wrap.append(svg);
  return el("span", {}, wrap, el("span", { class: "figure" }, format(last)));
}

const fixed = (n) => (v) => Number(v).toFixed(n);
const ms = (v) => `${Math.round(v)} ms`;

function renderStages(s) {
  const cards = ["staging", "canary", "production"].map((stage) => {
    const version = (s.current || {})[stage];
    return el("li", { "data-stage": stage, "data-version": version || "" },
      el("span", { class: "stage-name" }, stage),
      el("span", { class: "stage-version" }, version || "—"));
  });
  document.getElementById("stage-cards").replaceChildren(...cards);
}

function comparisonCell(c) {
  if (!c) return el("span", { class: "muted" }, "—");
  const kind = Object.keys(c.verdict)[0];
  const detail = c.verdict[kind];
  const head = kind === "Inconclusive" ? `inconclusive: ${detail.reason}` : `${kind.toLowerCase()} (score ${detail.score}%)`;
  const items = (c.metrics || []).map((m) =>
    el("li", { class: m.worse ? "worse" : "" },
      `${m.metric}: canary ${(m.canary_median / 1e6).toFixed(3)} vs baseline ${(m.baseline_median / 1e6).toFixed(3)}, p = ${m.p_value.toFixed(4)}${m.worse ? " (worse)" : ""}`));
  return el("div", {}, el("span", { class: kind === "Fail" ? "worse" : "" }, head), items.length ? el("ul", { class: "votes" }, items) : null);
}

function renderRollouts(s) {
  const rows = (s.rollouts || []).map((r) => {
    const total = r.batches.length;
    const progress = el("progress", { max: Math.max(total, 1), value: r.batches_done, "aria-label": `rollout ${r.id}: ${r.batches_done} of ${total} batches done` });
    const batches = el("span", {}, progress, el("span", { class: "figure" }, `${r.batches_done}/${total}`));
    const why = [r.reason, r.paused_before !== null && r.paused_before !== undefined ? `paused before batch ${r.paused_before}` : null,
      r.rollback_agents && r.rollback_agents.length ? `rolling back ${r.rollback_agents.join(", ")} to ${r.rollback_to}` : null]
      .filter(Boolean).join("; ");
    return el("tr", { "data-rollout": r.id, "data-status": r.status, "data-batches-done": r.batches_done, "data-batches": total, "data-version": r.version },
      el("th", { scope: "row" }, `#${r.id}`),
      el("td", {}, r.version),
      el("td", {}, r.stage),
      el("td", {}, el("span", { class: `status status-${r.status}` }, r.status.replace(/_/g, " "))),
      el("td", {}, batches),
      el("td", {}, comparisonCell(r.comparison)),
      el("td", {}, why || "—"));
  });
  replaceRows("rollout-rows", rows, "No rollouts yet.", 7);
}

function renderAgents(s, history) {
  const f = s.fleet || {};
  document.getElementById("fleet-figures").textContent =
    `${f.agents_reporting || 0} of ${(s.agents || []).length} agents reporting · safety min ${Number(f.safety_score_min || 0).toFixed(3)} · consensus rate ${(100 * (f.consensus_rate || 0)).toFixed(0)}%`;
  const rows = (s.agents || []).map((a) => {
    const h = a.health;
    const points = history[a.id] || [];
    const series = (key) => points.map((p) => p[key]);
    const verdict = h ? h.verdict : "no reports";
    return el("tr", { "data-agent": a.id, "data-version": a.version || "", "data-verdict": verdict },
      el("th", { scope: "row" }, a.id, a.warning ? el("div", { class: "worse" }, a.warning) : null),
      el("td", {}, a.specialty),
      el("td", {}, a.version || "—"),
      el("td", {}, el("span", { class: `status verdict-${verdict.replace(/ /g, "-")}` }, verdict)),
      el("td", {}, sparkline(`${a.id} coherence`, series("coherence"), fixed(3))),
      el("td", {}, sparkline(`${a.id} error rate`, series("error_rate"), fixed(3))),
      el("td", {}, sparkline(`${a.id} p95 response`, series("response_ms_p95"), ms)),
      el("td", {}, sparkline(`${a.id} safety`, series("safety"), fixed(3))));
  });
  replaceRows("agent-rows", rows, "No agents in the genesis or admitted since.", 8);
}

function renderProposals(s) {
  const rows = (s.proposals || []).map((p) => {
    const votes = Object.entries(p.votes || {}).map(([v, r]) =>
      el("li", { class: r.approve ? "vote-approve" : "vote-reject" },
        `validator ${v}: ${r.approve ? "approve" : "reject"}`, r.reasons.length ? ` — ${r.reasons.join("; ")}` : ""));
    return el("tr", { "data-proposal": p.id, "data-status": p.status },
      el("th", { scope: "row" }, `#${p.id}`),
      el("td", {}, p.what),
      el("td", {}, el("span", { class: `status status-${p.status}` }, `${p.status} (${p.approvals} for, ${p.rejections} against)`)),
      el("td", {}, votes.length ? el("ul", { class: "votes" }, votes) : el("span", { class: "muted" }, "no votes yet")));
  });
  replaceRows("proposal-rows", rows, "No proposals yet.", 4);
}

function renderEvents(events) {
  const items = events.map((e) =>
    el("li", { "data-kind": e.kind },
      el("span", { class: "tongue", title: `${e.tongue}: ${e.phase}`, "aria-label": `${e.tongue} (${e.phase})` }, e.tag),
      el("span", { class: "kind" }, e.kind.replace(/_/g, " ")),
      el("span", {}, e.subject), e.detail ? el("span", { class: "muted" }, ` — ${e.detail}`) : null,
      el("span", { class: "muted" }, ` (seq ${e.seq})`)));
  if (items.length === 0) items.push(el("li", { class: "muted" }, "No events yet."));
  document.getElementById("event-list").replaceChildren(...items);
}

function renderValidators(validators) {
  const known = (v) => (v === null || v === undefined ? "—" : v);
  const age = (v) => (v.position_age_ms > 5000 ? ` (as of ${Math.round(v.position_age_ms / 1000)} s ago)` : "");
  const rows = validators.map((v) =>
    el("tr", { "data-validator": v.id, "data-reachable": v.reachable, "data-executed": known(v.executed) === "—" ? "" : v.executed },
      el("th", { scope: "row" }, `${v.id}${v.serving ? " (serving this page)" : ""}`),
      el("td", {}, v.address || "—"),
      el("td", {}, el("span", { class: v.reachable ? "vote-approve" : "vote-reject" }, v.reachable ? "yes" : "no")),
      el("td", {}, v.epoch ? `${known(v.view)} (epoch ${v.epoch})` : known(v.view)),
      el("td", {}, `${known(v.status)}${age(v)}`),
      el("td", {}, known(v.executed)),
      el("td", {}, known(v.stable_checkpoint)),
      el("td", {}, v.diverged_at ? `diverged at seq ${v.diverged_at}` : (v.problem || "—"))));
  replaceRows("validator-rows", rows, "No validators.", 8);
}

function render(state) {
  document.getElementById("cluster").textContent = state.cluster;
  document.getElementById("node").textContent = state.node;
  document.getElementById("genesis").textContent = state.genesis.slice(0, 16);
  renderStages(state.summary);
  renderRollouts(state.summary);
  renderAgents(state.summary, state.history || {});
  renderProposals(state.summary);
  renderEvents(state.events || []);
  renderValidators(state.validators || []);
  updates += 1;
  document.body.dataset.updates = String(updates);
}

function setLive(kind, text) {
  const live = document.getElementById("live");
  if (live.dataset.live === kind) return;
  live.dataset.live = kind;
  live.textContent = text;
}

async function start() {
  try {
    const r = await fetch(withToken("/api/state"), { cache: "no-store" });
    if (!r.ok) {
      setLive("offline", r.status === 401 ? "This dashboard needs its token: open it as /?token=…" : `Cannot read the state (HTTP ${r.status}).`);
      return;
    }
    render(await r.json());
  } catch (e) {
    setLive("offline", "Cannot reach the validator.");
  }
  const stream = new EventSource(withToken("/api/stream"));
  stream.addEventListener("state", (ev) => {
    render(JSON.parse(ev.data));
    setLive("live", "Live");
  });
  stream.onopen = () => setLive("live", "Live");
  stream.onerror = () => setLive("offline", "Connection lost; reconnecting…");
}

start();
