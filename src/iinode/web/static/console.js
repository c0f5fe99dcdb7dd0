// The node's console: one page, views chosen by the hash and by the node's level.
import { ApiError, call, credentials, forget, get, signIn } from "./api.js";
import { History, legend, lineChart } from "./charts.js";
import { searchView } from "./search.js";

const POLL_MS = 2000;
const TREND_S = 900; // the plant view's temperature chart: stored readings of the last 15 min
const TREND_MACHINES = 5;
const $ = (sel, root = document) => root.querySelector(sel);
const main = $("#main");
const state = { node: null, view: null, timer: null, busy: false, rates: new Map(),
  history: new History(150) };

export function h(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" }[c]));
}
const num = (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? "—"
  : Number(v).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const pct = (v) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(1)}%`);
const ago = (t) => (t ? `${Math.max(0, Math.round(Date.now() / 1000 - t))} s ago` : "—");
const now = () => Date.now() / 1000;

function card(label, value, id) {
  return `<div class="card" ${id ? `id="${id}"` : ""}><div class="label">${h(label)}</div>
    <div class="value">${h(value)}</div></div>`;
}

function chartPanel(title, series, opts) {
  const panel = document.createElement("div");
  panel.className = "panel";
  panel.innerHTML = `<h2>${h(title)}</h2>`;
  panel.append(lineChart(series, opts), legend(series));
  return panel;
}

function needSignIn(what) {
  return `<div class="panel"><p class="muted">Sign in as an administrator of this node to see ${h(what)}.</p>
    <button class="open-sign-in">Sign in</button></div>`;
}

// -- sign-in ------------------------------------------------------------------------------

function showWho() {
  const c = credentials();
  $("#who").innerHTML = c ? `${h(c.identity)}${c.admin ? ' <span class="pill">admin</span>' : ""}`
    : '<button class="open-sign-in" id="sign-in-open">Sign in</button>';
  $("#sign-out").hidden = !c;
}

function openSignIn() {
  const dialog = $("#sign-in-dialog");
  $("#sign-in-identity").value = `300:0.NA/${state.node?.prefix ?? ""}`;
  $("#sign-in-error").textContent = "";
  dialog.showModal();
}

document.addEventListener("click", (e) => {
  if (e.target.closest(".open-sign-in")) openSignIn();
});
$("#sign-in-cancel").addEventListener("click", () => $("#sign-in-dialog").close());
$("#sign-out").addEventListener("click", () => { forget(); showWho(); route(); });
$("#sign-in-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const identity = $("#sign-in-identity").value.trim();
  const secret = $("#sign-in-secret").value;
  try {
    await signIn(identity, secret);
    $("#sign-in-dialog").close();
    $("#sign-in-secret").value = "";
    showWho();
    route();
  } catch (err) {
    $("#sign-in-error").textContent = err instanceof ApiError && err.status === 401
      ? "identity or secret not accepted" : String(err.message || err);
  }
});

// -- network view (top-level and secondary nodes) -----------------------------------------

function rate(prefix, total, at) {
  const last = state.rates.get(prefix);
  state.rates.set(prefix, { total, at });
  if (!last || at <= last.at) return last?.rate ?? null;
  const r = Math.max(0, (total - last.total) / (at - last.at));
  state.rates.set(prefix, { total, at, rate: r });
  return r;
}

function figures(node) {
  const total = (node.resolutions_http ?? 0) + (node.resolutions_native ?? 0);
  return { handles: node.handles, rate: node.at ? rate(node.prefix, total, node.at) : null };
}

async function networkData() {
  const top = state.node.role === "top";
  const tree = await get(`/console/api/tree?depth=${top ? 2 : 1}`);
  const signed = credentials();
  let mon = null;
  if (signed) {
    const since = now() - 600;
    const [nodes, security, findings, severity, trend, notices] = await Promise.all([
      get("/monitoring/nodes"), get("/monitoring/view?by=origin&kind=security"),
      get("/monitoring/view?by=origin&kind=finding"), get("/monitoring/view?by=severity"),
      get(`/monitoring/trend?bucket=10&since=${since}`), get("/monitoring/notices"),
    ]);
    mon = { nodes, security: security.counts, findings: findings.counts,
      severity: severity.counts, trend: trend.points, notices: notices.notices };
  }
  return { tree, mon };
}

function statusOf(prefix, node, mon) {
  if (!node.reachable) return ["unreachable", "bad"];
  if (!mon) return ["up", "ok"];
  if (mon.nodes.never_reported.includes(prefix)) return ["never reported", "bad"];
  if (mon.nodes.stale.includes(prefix)) return ["stopped reporting", "bad"];
  return ["reporting", "ok"];
}

function nodeRow(node, mon, group) {
  const f = figures(node);
  const seen = mon?.nodes.nodes.find((n) => n.origin === node.prefix);
  const [label, cls] = statusOf(node.prefix, node, mon);
  const sec = mon ? (mon.security[node.prefix] ?? 0) : null;
  const fin = mon ? (mon.findings[node.prefix] ?? 0) : null;
  return `<tr class="${group ? "group" : ""}" data-prefix="${h(node.prefix)}">
    <td>${group ? "" : "&nbsp;&nbsp;"}${h(node.prefix)}</td><td>${h(node.name ?? "")}</td>
    <td>${h(node.province || seen?.province || "")}</td><td>${h(node.industry || seen?.industry || "")}</td>
    <td><span class="pill ${cls} status">${h(label)}</span></td>
    <td class="muted">${seen ? ago(seen.last_seen) : "—"}</td>
    <td class="num handles">${num(f.handles)}</td><td class="num rate">${num(f.rate, 1)}</td>
    <td class="num">${num(sec)}</td><td class="num">${num(fin)}</td></tr>`;
}

async function networkView() {
  const { tree, mon } = await networkData();
  const top = state.node.role === "top";
  const provinces = top ? tree.children : [];
  const enterprises = top ? provinces.flatMap((p) => p.children || []) : tree.children;
  const all = [tree, ...provinces, ...enterprises];
  const rates = all.map((n) => figures(n));
  const handles = rates.reduce((a, f) => a + (f.handles ?? 0), 0);
  const rps = rates.reduce((a, f) => a + (f.rate ?? 0), 0);
  state.history.add("resolutions/s", now(), rps);
  const stale = mon ? mon.nodes.stale.length : null;
  const events = mon ? Object.values(mon.security).reduce((a, b) => a + b, 0)
    + Object.values(mon.findings).reduce((a, b) => a + b, 0) : null;
  const openNotices = mon ? mon.notices.length : null;
  const rows = top
    ? provinces.map((p) => nodeRow(p, mon, true) + (p.children || []).map((e) => nodeRow(e, mon, false)).join("")).join("")
    : enterprises.map((e) => nodeRow(e, mon, false)).join("");
  main.innerHTML = `<h1>${top ? "National view: provinces and their nodes" : "Provincial view: enterprises"}</h1>
    <div class="cards">
      ${top ? card("provinces", provinces.length, "card-provinces") : ""}
      ${card("enterprises", enterprises.length, "card-enterprises")}
      ${card("identifiers registered", num(handles), "card-handles")}
      ${card("resolutions / s", num(rps, 1), "card-rate")}
      ${card("security events + findings", num(events), "card-events")}
      ${card("stopped reporting", num(stale), "card-stale")}
      ${card("notices", num(openNotices), "card-notices")}
    </div>
    <div class="panel"><h2>${top ? "Provinces and enterprises" : "Enterprises"}</h2>
      <table id="nodes"><thead><tr><th>prefix</th><th>name</th><th>province</th><th>industry</th>
      <th>status</th><th>last report</th><th class="num">identifiers</th><th class="num">resolutions/s</th>
      <th class="num">security events</th><th class="num">findings</th></tr></thead>
      <tbody>${rows}</tbody></table></div>
    <div class="grid2" id="charts"></div>
    ${mon ? "" : needSignIn("reporting status, security events and notices")}`;
  const charts = $("#charts");
  charts.append(chartPanel("Resolutions per second (this node and below)",
    [{ name: "resolutions/s", points: state.history.get("resolutions/s") }], { min: 0 }));
  if (mon) {
    charts.append(chartPanel("Monitoring events received per 10 s",
      [{ name: "events", points: mon.trend }], { min: 0 }));
    const sev = Object.entries(mon.severity).map(([k, v]) => `${h(k)}: ${num(v)}`).join(" · ");
    charts.firstChild.insertAdjacentHTML("beforeend", `<p class="muted">events by severity: ${sev || "none"}</p>`);
  }
}

// -- plant view (enterprise nodes) ----------------------------------------------------------

const path = (id) => id.split("/").map(encodeURIComponent).join("/");

// The node's open alarms (GET /alarms: active, acknowledged, or cleared and not yet
// acknowledged), each with its rule's source: a tag or KPI threshold, or the maintenance model.
function alarmSource(a, rules) {
  const rule = rules.find((r) => r.id === a.rule);
  if (!rule) return `${a.rule} (maintenance model)`;
  const what = rule.source === "model" ? "maintenance model" : rule.source;
  return `${rule.id}: ${what} ${rule.name} ${rule.kind} ${num(rule.limit, 2)}`;
}

function alarmTable(alarms, rules) {
  if (alarms === null) return '<p class="muted">this node has no alarm API</p>';
  if (!alarms.length) return '<p class="muted">no open alarm</p>';
  const cls = { active: "bad", acknowledged: "warn", cleared: "idle" };
  const rows = alarms.map((a) => `<tr class="alarm" data-id="${h(a.id)}" data-rule="${h(a.rule)}">
    <td>${h(a.equipment)}</td><td>${h(alarmSource(a, rules))}${a.message ? `<div class="muted">${h(a.message)}</div>` : ""}</td>
    <td><span class="pill ${h(a.severity)}">${h(a.severity)}</span></td>
    <td><span class="pill ${cls[a.state] || "idle"} alarm-state">${h(a.state)}</span>${a.acknowledged_by
      ? `<div class="muted">by ${h(a.acknowledged_by)}</div>` : ""}</td>
    <td class="muted">${new Date(a.raised_us / 1000).toLocaleTimeString()}</td>
    <td class="num">${num(a.value, 2)}</td>
    <td>${a.state === "acknowledged" ? "" : `<button class="ack" data-id="${h(a.id)}">Acknowledge</button>`}</td></tr>`).join("");
  return `<table id="alarm-list"><thead><tr><th>equipment</th><th>source</th><th>severity</th><th>state</th>
    <th>since</th><th class="num">value</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

async function plantView() {
  const prefix = state.node.prefix;
  if (!credentials()) {
    const tree = await get("/console/api/tree?depth=0");
    main.innerHTML = `<h1>Enterprise view: ${h(state.node.name)}</h1><div class="cards">
      ${card("identifiers registered", num(tree.handles), "card-handles")}</div>${needSignIn("lines, machines and KPIs")}`;
    return;
  }
  const equipment = (await get(`/telemetry/equipment?prefix=${encodeURIComponent(prefix)}`))
    .filter((e) => e.kind === "machine");
  const since = new Date(Date.now() - TREND_S * 1000).toISOString();
  const trended = equipment.slice(0, TREND_MACHINES);
  const [plant, notices, alarms, rules, trends, ...perMachine] = await Promise.all([
    get(`/kpi/plants/${encodeURIComponent(prefix)}/live`).catch(() => null),
    get("/monitoring/notices").catch(() => ({ notices: [] })),
    get("/alarms").catch(() => null),
    get("/alarms/rules").catch(() => []),
    Promise.all(trended.map((e) => get(`/telemetry/equipment/${path(e.id)}/history?tag=temperature`
      + `&start=${encodeURIComponent(since)}&limit=2000`).catch(() => ({ readings: [] })))),
    ...equipment.map((e) => Promise.all([
      get(`/telemetry/equipment/${path(e.id)}/live`).catch(() => ({ tags: {} })),
      get(`/kpi/equipment/${path(e.id)}/live`).catch(() => null),
    ])),
  ]);
  const t = now();
  const k = plant?.kpis ?? {};
  state.history.add("plant OEE", t, k.oee);
  state.history.add("availability", t, k.availability);
  state.history.add("quality", t, k.quality_ratio);
  const lines = new Map();
  equipment.forEach((e, i) => {
    const [live, kpi] = perMachine[i];
    const line = e.line || "(no line)";
    if (!lines.has(line)) lines.set(line, []);
    lines.get(line).push({ e, live: live.tags || {}, kpi });
    const power = live.tags?.power?.value;
    state.history.add(`${e.id} power`, t, typeof power === "number" ? power : null);
  });
  const down = equipment.filter((e, i) => perMachine[i][0].tags?.state?.value === "down");
  const m = plant?.metrics ?? {};
  const open = notices.notices.filter((n) => n.state !== "acknowledged" && n.state !== "completed");
  main.innerHTML = `<h1>Enterprise view: ${h(state.node.name)} (${h(prefix)})</h1>
    <div class="cards">
      ${card("plant OEE (shift)", pct(k.oee), "card-oee")}
      ${card("availability", pct(k.availability))}
      ${card("effectiveness", pct(k.effectiveness))}
      ${card("quality ratio", pct(k.quality_ratio))}
      ${card("good units / h", num(m.good_units_per_hour, 1), "card-good")}
      ${card("resource utilisation", pct(m.resource_utilisation))}
      ${card("defect rate", pct(m.defect_rate))}
      ${card("cost / good unit", num(m.operating_cost_per_good_unit, 2))}
      ${card("alarms not acknowledged", alarms ? num(alarms.filter((a) => a.state !== "acknowledged").length) : "—", "card-alarms")}
      ${card("machines down", down.length, "card-down")}
      ${card("notices to answer", open.length, "card-open-notices")}
    </div>
    <div id="lines"></div>
    <div class="grid2" id="charts"></div>
    <div class="panel" id="alarms"><h2>Alarms</h2>${alarmTable(alarms, rules)}
      <p class="muted" id="machines-down">machines down: ${down.length
        ? down.map((e) => `<span class="pill bad">${h(e.id)}</span>`).join(" ") : "none"}</p>
      ${plant?.issues?.length ? `<details><summary class="muted">${plant.issues.length} data-quality notes</summary>
        <pre>${h(plant.issues.join("\n"))}</pre></details>` : ""}</div>`;
  main.querySelectorAll("#alarms button.ack").forEach((b) => b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await call("POST", `/alarms/${encodeURIComponent(b.dataset.id)}/ack`);
    } catch (err) { b.insertAdjacentHTML("afterend", `<span class="error">${h(err.message)}</span>`); return; }
    refresh();
  }));
  const linesDiv = $("#lines");
  for (const [line, machines] of lines) {
    const panel = document.createElement("div");
    panel.className = "panel line";
    panel.innerHTML = `<h2>${h(line)}</h2><div class="machines">${machines.map(({ e, live, kpi }) => {
      const st = live.state?.value ?? "unknown";
      const cls = { running: "ok", idle: "idle", setup: "warn", down: "bad" }[st] || "idle";
      const tag = (n, d = 1) => (live[n] ? `${num(live[n].value, d)}` : "—");
      return `<div class="machine" data-id="${h(e.id)}"><h3><span>${h(e.id.split("/").slice(1).join("/"))}</span>
        <span class="pill ${cls} state">${h(st)}</span></h3><dl>
        <dt>OEE (shift)</dt><dd class="oee">${pct(kpi?.kpis?.oee)}</dd>
        <dt>good / scrap</dt><dd class="count">${tag("good_count", 0)} / ${tag("scrap_count", 0)}</dd>
        <dt>cycle time s</dt><dd>${tag("cycle_time", 2)}</dd>
        <dt>temperature °C</dt><dd class="temperature">${tag("temperature", 1)}</dd>
        <dt>power kW</dt><dd>${tag("power", 1)}</dd>
        <dt>vibration mm/s</dt><dd>${tag("vibration", 2)}</dd>
        <dt>last reading</dt><dd class="muted">${live.good_count ? new Date(live.good_count.time).toLocaleTimeString() : "—"}</dd>
        </dl></div>`;
    }).join("")}</div>`;
    linesDiv.appendChild(panel);
  }
  const charts = $("#charts");
  charts.append(chartPanel("Plant OEE, availability and quality (current shift)", [
    { name: "OEE", points: state.history.get("plant OEE") },
    { name: "availability", points: state.history.get("availability") },
    { name: "quality", points: state.history.get("quality") },
  ], { min: 0, max: 1 }));
  charts.append(chartPanel(`Machine temperature °C, last ${TREND_S / 60} min (stored readings)`,
    trended.map((e, i) => ({
      name: e.id.split("/").slice(1).join("/"),
      points: trends[i].readings.filter((r) => typeof r.value === "number")
        .map((r) => [Date.parse(r.time) / 1000, r.value]),
    }))));
}

// -- identifier lookup and registration ------------------------------------------------------

function lookupView() {
  main.innerHTML = `<h1>Identifier lookup</h1>
    <div class="panel"><form id="lookup-form" class="row">
      <label>Identifier or GS1 Digital Link <input id="lookup-input" placeholder="88.118.8/PRESS-01 or /01/09506000134352" required></label>
      <button type="submit" id="lookup-submit">Resolve</button></form>
      <div id="lookup-result"></div></div>
    <div class="panel"><h2>Register an identifier</h2>
      <form id="register-form" class="row">
        <label>Identifier <input id="register-handle" placeholder="${h(state.node.prefix)}/NEW-1" required></label>
        <label>URL <input id="register-url" placeholder="https://example.com/item" required></label>
        <button type="submit" id="register-submit">Register</button></form>
      <p id="register-result" class="muted"></p></div>`;
  $("#lookup-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const id = $("#lookup-input").value.trim();
    location.hash = `#/lookup?id=${encodeURIComponent(id)}`;
  });
  $("#register-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const handle = $("#register-handle").value.trim();
    const url = $("#register-url").value.trim();
    const out = $("#register-result");
    if (!credentials()) { out.textContent = "sign in first: registration is authorised as by the REST API"; return; }
    try {
      await call("PUT", `/api/handles/${path(handle)}`, { values: [
        { index: 1, type: "URL", data: { format: "string", value: url } }] });
      out.innerHTML = `registered <a href="#/lookup?id=${encodeURIComponent(handle)}">${h(handle)}</a>`;
    } catch (err) {
      out.textContent = `refused: ${err.message}`;
    }
  });
  const id = new URLSearchParams(location.hash.split("?")[1] || "").get("id");
  if (id) { $("#lookup-input").value = id; resolveInto(id); }
}

async function resolveInto(id) {
  const out = $("#lookup-result");
  out.innerHTML = '<p class="muted">resolving…</p>';
  let answer;
  try {
    answer = await get(`/console/api/resolve?id=${encodeURIComponent(id)}`);
  } catch (err) {
    out.innerHTML = `<p class="error" id="lookup-error">${h(err.body?.error || err.message)}</p>`;
    return;
  }
  const hops = answer.chain.map((hop) => `<div class="hop"><div class="server">${h(hop.server)}</div>
    <div class="muted">${h(hop.code)}${hop.cached ? " · cached" : ""}</div>
    <div class="muted">${h(hop.detail || hop.asked)}</div></div>`).join('<span class="arrow">→</span>');
  const rows = answer.values.map((v) => `<tr><td class="num">${h(v.index)}</td><td>${h(v.type)}</td>
    <td><pre>${h(typeof v.data.value === "string" ? v.data.value : JSON.stringify(v.data.value, null, 1))}</pre></td>
    <td class="num">${h(v.ttl)}</td></tr>`).join("");
  let linkset = "";
  if (answer.gs1) {
    try {
      const ls = await fetch(`${new URL(id, location.origin).pathname}?linkType=linkset`,
        { headers: { Accept: "application/linkset+json" } });
      if (ls.ok) linkset = `<h2>GS1 linkset</h2><pre id="lookup-linkset">${h(JSON.stringify(await ls.json(), null, 1))}</pre>`;
    } catch { /* the record above is what matters */ }
  }
  out.innerHTML = `<h2>${h(answer.handle)} <span class="muted">in ${h(answer.ms)} ms</span></h2>
    <div class="path" id="lookup-path">${hops}</div>
    <table id="lookup-values"><thead><tr><th class="num">index</th><th>type</th><th>value</th><th class="num">ttl</th></tr></thead>
    <tbody>${rows}</tbody></table>${linkset}`;
}

// -- notices ----------------------------------------------------------------------------------

async function noticesView() {
  if (!credentials()) { main.innerHTML = `<h1>Notices</h1>${needSignIn("notices")}`; return; }
  const issuing = state.node.role === "top" || state.node.role === "secondary";
  const { notices } = await get("/monitoring/notices");
  const progress = issuing ? await Promise.all(notices.filter((n) => n.issuer === state.node.prefix)
    .map((n) => get(`/monitoring/notices/${encodeURIComponent(n.id)}/progress`))) : [];
  const list = notices.map((n) => {
    const p = progress.find((x) => x.notice.id === n.id);
    const states = p ? Object.entries(p.states) : [];
    const acked = states.filter(([, s]) => s === "acknowledged" || s === "completed").length;
    const answer = !issuing || n.issuer !== state.node.prefix;
    return `<div class="panel notice" data-id="${h(n.id)}"><h2>${h(n.title)} <span class="muted">${h(n.id)}</span></h2>
      <p>${h(n.action)}</p><p class="muted">issued by ${h(n.issuer)} at ${new Date(n.issued_at * 1000).toLocaleString()}</p>
      ${p ? `<p class="ack-count"><b>${acked}</b> of ${states.length} nodes acknowledged
        ${p.pending.length ? ` · not reached: ${p.pending.map(h).join(", ")}` : ""}</p>
        <table class="progress"><thead><tr><th>node</th><th>state</th></tr></thead><tbody>
        ${states.map(([o, s]) => `<tr><td>${h(o)}</td><td><span class="pill ${s === "acknowledged" || s === "completed" ? "ok" : "warn"}">${h(s)}</span></td></tr>`).join("")}
        </tbody></table>` : ""}
      ${answer ? `<p>this node: <span class="pill own-state">${h(n.state ?? "not answered")}</span>
        ${n.state === "acknowledged" || n.state === "completed" ? ""
          : `<button class="ack" data-id="${h(n.id)}">Acknowledge</button>`}</p>` : ""}</div>`;
  }).join("");
  main.innerHTML = `<h1>Notices</h1>
    ${issuing ? `<div class="panel"><h2>Issue a notice to the levels below</h2><form id="notice-form">
      <div class="row"><label>Id <input id="notice-id" required placeholder="NOTICE-2026-002"></label>
      <label>Title <input id="notice-title" required></label></div>
      <label>Action <textarea id="notice-action" rows="2" required></textarea></label>
      <button type="submit" id="notice-submit">Issue</button> <span id="notice-result" class="muted"></span></form></div>` : ""}
    <div id="notice-list">${list || '<p class="muted">no notices</p>'}</div>`;
  main.querySelectorAll("button.ack").forEach((b) => b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await call("POST", `/monitoring/notices/${encodeURIComponent(b.dataset.id)}/answer`, { state: "acknowledged" });
    } catch (err) { b.insertAdjacentHTML("afterend", `<span class="error">${h(err.message)}</span>`); }
    refresh();
  }));
  const form = $("#notice-form");
  if (form) form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await call("POST", "/monitoring/notices", { id: $("#notice-id").value.trim(),
        issuer: state.node.prefix, issued_at: now(), title: $("#notice-title").value.trim(),
        action: $("#notice-action").value.trim() });
      refresh();
    } catch (err) { $("#notice-result").textContent = `refused: ${err.message}`; }
  });
}

// -- routing and polling ----------------------------------------------------------------------

const VIEWS = {
  level: () => (state.node.role === "enterprise" ? plantView : state.node.role === "recursive" ? null : networkView),
  lookup: () => lookupView,
  search: () => () => searchView(main, h),
  notices: () => noticesView,
};
// Views that redraw on every poll; the others keep what the user typed.
const LIVE = new Set(["level", "notices"]);

function currentView() {
  const name = location.hash.replace(/^#\/?/, "").split("?")[0] || "level";
  return VIEWS[name] ? name : "level";
}

async function refresh() {
  if (state.busy) return;
  const name = currentView();
  const view = VIEWS[name]() || lookupView;
  const editing = name === "notices" && main.contains(document.activeElement)
    && document.activeElement.matches("input, textarea");
  if (editing) return;
  state.busy = true;
  try {
    await view();
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      main.insertAdjacentHTML("afterbegin", `<p class="error">${h(err.message)}</p>`);
    } else {
      $("#updated").textContent = `update failed: ${err.message}`;
    }
  } finally {
    state.busy = false;
  }
}

function route() {
  const name = currentView();
  document.querySelectorAll("nav a[data-view]").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
  clearInterval(state.timer);
  refresh();
  if (LIVE.has(name)) state.timer = setInterval(refresh, POLL_MS);
}

async function start() {
  state.node = await get("/api/node");
  document.title = `${state.node.name || state.node.prefix} · iinode console`;
  $("#node-title").textContent = `${state.node.name || "iinode"} (${state.node.prefix ?? ""})`;
  $("#node-role").textContent = state.node.role;
  $("#nav-level").textContent = { top: "National", secondary: "Provincial", enterprise: "Plant" }[state.node.role] || "Overview";
  showWho();
  window.addEventListener("hashchange", route);
  route();
}

start();
