// The search view: identifiers of this node found by words, template or an attribute value
// (GET /api/search), a page at a time, each shown with its attributes.
import { call, credentials, get } from "./api.js";

const PAGE = 20;

function hashParams() {
  return new URLSearchParams(location.hash.split("?")[1] || "");
}

// Attributes of a record (index 2000 up) as "name: value", in index order.
function attributes(values, h) {
  return values.filter((v) => v.index >= 2000)
    .map((v) => `<span class="attr"><span class="muted">${h(v.type)}</span> ${h(v.data.value)}</span>`)
    .join(" ");
}

export async function searchView(main, h) {
  const asked = hashParams();
  const q = asked.get("q") || "";
  const template = asked.get("template") || "";
  const attr = asked.get("attr") || "";
  const { templates } = await get("/api/templates").catch(() => ({ templates: [] }));
  main.innerHTML = `<h1>Search</h1>
    <div class="panel"><form id="search-form" class="row">
      <label>Words <input id="search-q" value="${h(q)}" placeholder="轴承, bearing"></label>
      <label>Template <select id="search-template"><option value="">any</option>
        ${templates.map((t) => `<option${t === template ? " selected" : ""}>${h(t)}</option>`).join("")}
      </select></label>
      <label>Attribute <input id="search-attr" value="${h(attr)}" placeholder="material=GCr15"></label>
      <button type="submit" id="search-submit">Search</button></form>
      <p class="muted">Words are matched in full-text attributes (Chinese by pairs of characters).
      Restricted values are matched only for ${credentials() ? "identities allowed to read them" : "signed-in readers"}.</p></div>
    <div id="search-result"></div>`;
  $("#search-form", main).addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [key, id] of [["q", "#search-q"], ["template", "#search-template"], ["attr", "#search-attr"]]) {
      const value = $(id, main).value.trim();
      if (value) next.set(key, value);
    }
    location.hash = `#/search?${next}`;
  });
  if (q || template || attr) await showPage(main, h, q, template, attr, asked.get("after"));
}

function $(sel, root) {
  return root.querySelector(sel);
}

async function showPage(main, h, q, template, attr, after) {
  const out = $("#search-result", main);
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (q) query.set("q", q);
  if (template) query.set("template", template);
  if (attr) {
    const [name, ...rest] = attr.split("=");
    query.set(`attr.${name.trim()}`, rest.join("=").trim());
  }
  if (after) query.set("after", after);
  let page;
  try {
    page = await call("GET", `/api/search?${query}`);
  } catch (err) {
    out.innerHTML = `<p class="error" id="search-error">${h(err.message)}</p>`;
    return;
  }
  const records = await Promise.all(page.handles.map((handle) =>
    call("GET", `/api/handles/${handle.split("/").map(encodeURIComponent).join("/")}`)
      .then((r) => r.values).catch(() => [])));
  const rows = page.handles.map((handle, i) => `<tr><td><a href="#/lookup?id=${encodeURIComponent(handle)}">${h(handle)}</a></td>
    <td>${attributes(records[i], h)}</td></tr>`).join("");
  const more = new URLSearchParams(hashParams());
  if (page.next) more.set("after", page.next);
  out.innerHTML = page.handles.length
    ? `<div class="panel"><table id="search-hits"><thead><tr><th>identifier</th><th>attributes</th></tr></thead>
        <tbody>${rows}</tbody></table>
        ${page.next ? `<p><a id="search-next" href="#/search?${more}">next ${PAGE}</a></p>` : ""}</div>`
    : '<p class="muted" id="search-none">nothing found</p>';
}
