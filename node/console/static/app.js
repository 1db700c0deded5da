// floe console: reads the node's /v1 API every two seconds and draws the cluster, the
// topics with their tier maps, the archive and the recent errors. No framework, no
// build step.
"use strict";

const REFRESH_MS = 2000;
const MAX_TOPICS = 200;

const TIERS = [
  ["active", "active on its leader"],
  ["sealed", "sealed, local only (no archive)"],
  ["uploading", "sealed, not archived yet"],
  ["both", "local and archived"],
  ["remote", "archive only"],
  ["expired", "expired"],
  ["abandoned", "abandoned"],
  ["lost", "lost"],
];

let token = sessionStorage.getItem("floe-token") || "";
let adminMode = sessionStorage.getItem("floe-admin") === "1"; // without --auth-file: asked for

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-") || k === "title" || k === "type") e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// leaderConsole is the console URL of the Raft leader, and self this node's id, from
// the last refresh: admin actions run on the Raft leader.
let leaderConsole = "";
let leaderID = 0;
let selfID = 0;

async function api(method, path) {
  const headers = {};
  if (token) headers["Authorization"] = "Bearer " + token;
  // A change is never sent on to another node by a redirect (another origin).
  const resp = await fetch(path, { method, headers, cache: "no-store", redirect: method === "GET" ? "follow" : "manual" });
  if (resp.type === "opaqueredirect") {
    throw new Error("admin actions run on the Raft leader, node " + leaderID + ": open its console, " + leaderConsole);
  }
  const text = await resp.text();
  if (!resp.ok && method !== "GET" && leaderID && leaderID !== selfID && /leader/i.test(text)) {
    throw new Error(text.trim() + ": admin actions run on the Raft leader, node " + leaderID + ": open its console, " + leaderConsole);
  }
  if (!resp.ok) throw new Error(method + " " + path + ": " + resp.status + " " + text.trim());
  return text ? JSON.parse(text) : null;
}

function bytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function seconds(s) {
  if (!s) return "0 s";
  if (s < 120) return s.toFixed(1) + " s";
  return (s / 60).toFixed(1) + " min";
}

// tierOf classifies a STATE segment entry for the map.
function tierOf(seg, archive) {
  if (seg.lost) return "lost";
  if (seg.abandoned) return "abandoned";
  if (seg.state === "expired") return "expired";
  if (seg.state === "active" || seg.state === "sealing") return "active";
  if (seg.state === "archived") return seg.tier === "remote" ? "remote" : "both";
  return archive ? "uploading" : "sealed";
}

function drawLegend() {
  const legend = document.getElementById("legend");
  legend.replaceChildren(...TIERS.map(([t, what]) => el("span", {}, el("span", { class: "cell tier-" + t }), what)));
}

// consoleURL is the console of the node whose HTTP address is addr; a node bound to
// every interface is reached at this page's host.
function consoleURL(addr) {
  const i = addr.lastIndexOf(":");
  let host = addr.slice(0, i);
  if (host === "[::]" || host === "0.0.0.0" || host === "") host = location.hostname;
  return location.protocol + "//" + host + ":" + addr.slice(i + 1) + "/";
}

function drawMembers(cluster, reports) {
  const leader = cluster.metrics.current_leader;
  leaderID = leader || 0;
  selfID = cluster.metrics.id;
  const lr = reports.find((r) => r.id === leader);
  leaderConsole = lr && lr.http_addr ? consoleURL(lr.http_addr) : "";
  document.getElementById("cluster-id").textContent = "cluster " + (cluster.metrics.cluster_id || "?");
  document.getElementById("cluster-summary").textContent =
    "Raft leader: node " + (leader ?? "none") + " · term " + cluster.metrics.current_term +
    " · log index " + cluster.metrics.last_log_index + " · under-replicated segments: " + cluster.under_replicated_segments;
  const body = document.querySelector("#members tbody");
  body.replaceChildren(...reports.map((r) => {
    const actions = el("td", { class: "admin" });
    if (r.id === leader) actions.append(button("Transfer leadership", () => confirmThen(
      "Move Raft leadership away from node " + r.id + "?", () => api("POST", "/v1/cluster/transfer-leadership"))));
    actions.append(" ", button("Remove", () => confirmThen(
      "Remove node " + r.id + " from the cluster? It stops being a voter; its segments are re-replicated or recovered.",
      () => api("DELETE", "/v1/cluster/members/" + r.id))));
    return el("tr", { "data-node": r.id },
      el("td", {}, "node " + r.id),
      el("td", {}, r.up ? (r.state || "") : "?"),
      el("td", { class: r.up ? "up" : "down", title: r.error || "" }, r.up ? "up" : "down"),
      el("td", {}, r.raft_addr || ""),
      el("td", {}, r.client_addr || ""),
      el("td", {}, r.applied_index ?? ""),
      el("td", {}, r.up ? (r.has_lease ? "yes" : "no") : ""),
      el("td", {}, r.up ? seconds(r.rpo_seconds) : ""),
      el("td", {}, r.up ? r.backlog_segments + " segments, " + bytes(r.backlog_bytes) : ""),
      el("td", {}, r.up ? r.client_connections : ""),
      actions);
  }));
}

function drawTopics(states, archive) {
  const box = document.getElementById("topics");
  if (!states.length) { box.replaceChildren(el("p", { class: "muted" }, "No topics yet.")); return; }
  box.replaceChildren(...states.map((st) => {
    const cfg = st.config || {};
    const counts = {};
    const cells = (st.segments || []).map((seg) => {
      const t = tierOf(seg, archive.enabled);
      counts[t] = (counts[t] || 0) + 1;
      const where = t === "active" ? "active on node " + seg.leader : t;
      return el("span", {
        class: "cell tier-" + t, "data-topic": st.topic, "data-segment": seg.id, "data-tier": t,
        title: "segment " + seg.id + ": " + where + "\noffsets " + seg.base + "–" + (seg.base + seg.count) +
          "\n" + seg.count + " entries, " + bytes(seg.bytes) + "\nreplicas " + (seg.replicas || []).join(", "),
      });
    });
    const summary = Object.entries(counts).map(([t, n]) => n + " " + t).join(" · ");
    const tb = (archive.topics || {})[st.topic];
    const backlog = tb ? " · not archived yet: " + tb.backlog_segments + " sealed segments, " + bytes(tb.backlog_bytes) +
      ", the oldest since " + seconds(tb.unarchived_age_seconds) : "";
    const recover = button("Recover active segment…", () => {
      const to = prompt("Move writes of " + st.topic + " to which node id?");
      if (!to) return;
      confirmThen("Recover the active segment of " + st.topic + " onto node " + to + "?",
        () => api("POST", "/v1/topics/" + encodeURIComponent(st.topic) + "/recover-segment?to=" + encodeURIComponent(to) + "&segment=" + st.current_segment));
    });
    const del = button("Delete topic…", () => confirmThen(
      "Delete topic " + st.topic + " (id " + st.id + ") with all its entries, cursor, local files and archive objects? This cannot be undone.",
      () => api("DELETE", "/v1/topics/" + encodeURIComponent(st.topic)), st.topic));
    del.classList.add("delete-topic");
    return el("div", { class: "topic", "data-topic": st.topic },
      el("h3", {}, st.topic),
      el("div", { class: "muted" },
        "offsets " + st.start_offset + "–" + (st.end_offset ?? "?") + " · cursor " + st.cursor +
        " · replication " + (cfg.replication_factor || 1) +
        (cfg.retention_ms ? " · retention " + seconds(cfg.retention_ms / 1000) : "") +
        (cfg.retention_bytes ? " · retention " + bytes(cfg.retention_bytes) : "") +
        " · " + (st.segments || []).length + " segments: " + summary + backlog),
      el("div", { class: "map" }, ...cells),
      el("p", { class: "admin" }, recover, " ", del));
  }));
}

function drawArchive(a) {
  const rows = a.enabled ? [
    ["segments archived", a.objects],
    ["object bytes", bytes(a.object_bytes)],
    ["bytes before compression", bytes(a.raw_bytes)],
    ["compression ratio", a.compression_ratio ? a.compression_ratio.toFixed(2) + "×" : "–"],
    ["archive only (evicted locally)", a.remote_only],
    ["orphans at the last sweep", a.last_sweep ? a.last_sweep.orphans + " objects, " + bytes(a.last_sweep.orphan_bytes) + " (" + new Date(a.last_sweep.at).toLocaleString() + ")" : "no sweep by this node yet"],
    ["deleted topics with objects left", (a.pending_deletions || []).length ? a.pending_deletions.join(", ") : "none"],
  ] : [["archive", "none: this cluster keeps sealed segments local only (no --archive)"]];
  document.querySelector("#archive-table tbody").replaceChildren(...rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v))));
}

function drawErrors(reports) {
  const all = [];
  for (const r of reports) for (const e of r.recent_errors || []) all.push({ node: r.id, ...e });
  all.sort((a, b) => (a.time < b.time ? 1 : -1));
  const body = document.querySelector("#errors tbody");
  if (!all.length) { body.replaceChildren(el("tr", {}, el("td", { class: "muted", colSpan: 4 }, "none"))); return; }
  body.replaceChildren(...all.slice(0, 50).map((e) => el("tr", {},
    el("td", {}, new Date(e.time).toLocaleTimeString()), el("td", {}, "node " + e.node), el("td", {}, e.level),
    el("td", { title: JSON.stringify(e.attrs || {}) }, e.message + (e.attrs && e.attrs.err ? ": " + e.attrs.err : "")))));
}

function button(label, onClick) {
  const b = el("button", { type: "button" }, label);
  b.addEventListener("click", onClick);
  return b;
}

// confirmThen runs action once the operator confirms text; with mustType, only if
// they also typed it (the name of what an action destroys).
function confirmThen(text, action, mustType) {
  const dlg = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  const line = document.getElementById("confirm-typed-line");
  const typed = document.getElementById("confirm-typed");
  line.hidden = !mustType;
  typed.value = "";
  document.getElementById("confirm-typed-name").textContent = mustType || "";
  dlg.onclose = async () => {
    if (dlg.returnValue !== "ok") return;
    if (mustType && typed.value !== mustType) {
      setStatus("not done: the name typed was not " + mustType, true);
      return;
    }
    try { await action(); setStatus("done: " + text); } catch (e) { setStatus(e.message, true); }
    refresh();
  };
  dlg.showModal();
}

function setStatus(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "down" : "muted";
}

// signedIn asks the node what the token may: the admin actions show only for a token
// that may administer the cluster, or, on a node that checks no tokens, once asked for.
async function signedIn() {
  let who = { auth: true, valid: false, cluster_admin: false };
  try { who = await api("GET", "/v1/whoami"); } catch (e) { setStatus(e.message, true); }
  const admin = who.auth ? (token && who.valid && who.cluster_admin) : adminMode;
  document.body.classList.toggle("signed-in", !!admin);
  const b = document.getElementById("token-button");
  if (!who.auth) b.textContent = adminMode ? "Admin actions on (no tokens here)" : "Show admin actions";
  else if (!token) b.textContent = "Sign in with a token";
  else b.textContent = who.valid ? (who.cluster_admin ? "Signed in (admin)" : "Signed in (no admin rights)") : "Unknown token";
  b.dataset.auth = who.auth ? "1" : "0";
}

async function refresh() {
  try {
    const [cluster, nodes, topics, archive] = await Promise.all([
      api("GET", "/v1/cluster"), api("GET", "/v1/nodes"), api("GET", "/v1/topics"), api("GET", "/v1/archive/summary"),
    ]);
    const names = (topics.topics || []).slice().sort().slice(0, MAX_TOPICS);
    const states = await Promise.all(names.map((t) => api("GET", "/v1/topics/" + encodeURIComponent(t))));
    drawMembers(cluster, nodes.nodes || []);
    drawTopics(states, archive);
    drawArchive(archive);
    drawErrors(nodes.nodes || []);
    setStatus("updated " + new Date().toLocaleTimeString());
    document.body.dataset.loaded = "true";
  } catch (e) {
    setStatus(e.message, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawLegend();
  signedIn();
  document.getElementById("token-button").addEventListener("click", () => {
    if (document.getElementById("token-button").dataset.auth === "0") {
      if (adminMode) { adminMode = false; sessionStorage.removeItem("floe-admin"); signedIn(); return; }
      confirmThen("This node checks no tokens (no --auth-file): anyone who reaches it may administer the cluster. Show the admin actions?",
        async () => { adminMode = true; sessionStorage.setItem("floe-admin", "1"); await signedIn(); });
      return;
    }
    const dlg = document.getElementById("token-dialog");
    document.getElementById("token-input").value = "";
    dlg.onclose = () => {
      if (dlg.returnValue === "ok") token = document.getElementById("token-input").value.trim();
      if (dlg.returnValue === "clear") token = "";
      if (token) sessionStorage.setItem("floe-token", token); else sessionStorage.removeItem("floe-token");
      signedIn();
      refresh();
    };
    dlg.showModal();
  });
  document.getElementById("sweep-button").addEventListener("click", () => confirmThen(
    "Sweep the archive now: delete the orphaned segment objects past their grace period?",
    () => api("POST", "/v1/archive/sweep")));
  // The next refresh is due REFRESH_MS after this one ends: a slow node never has
  // several of one page's refreshes at once.
  const loop = async () => { await refresh(); setTimeout(loop, REFRESH_MS); };
  loop();
});
