/**
 * The console's page script: plain DOM, no framework, compiled by `npm run build` (tsc, with
 * src/console/client/tsconfig.json) into dist/console/www/client/app.js and served as
 * `/console/app.js`. It keeps one copy of the cluster's state, fed by the server's event stream
 * (a whole state on connect, patches after), and redraws at most once per animation frame.
 */
import type { ConsoleEvent, ConsoleNode, ConsolePatch, ConsoleShard, ConsoleState } from "../types.js";

const ROW_HEIGHT = 26;
const TOKEN_KEY = "multiconnect-admin-token";

const base = location.pathname.replace(/\/+$/, "") + "/";
/** The webapp's mount point: the admin API lives beside /console. */
const mount = base.replace(/console\/$/, "");

let state: ConsoleState | null = null;
let selected: number | null = null;
let filtered: readonly ConsoleShard[] = [];
let drawPending = false;
/** Only the visible shard rows need drawing (a scroll), not the whole page. */
let rowsOnly = true;
/** The nodes table shows at most this many rows (the filter finds the others): a 1,024-shard cluster has over a thousand nodes. */
const MAX_NODE_ROWS = 100;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console: the page has no #${id}`);
  return el as T;
};

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | null)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  // Styles through the CSSOM: the content security policy refuses style attributes in markup.
  for (const [k, v] of Object.entries(attrs))
    if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v);
  for (const c of children) if (c !== null) el.append(c);
  return el;
}

function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 120_000) return `${(value / 1000).toFixed(1)} s`;
  if (value < 7_200_000) return `${Math.round(value / 60_000)} min`;
  return `${(value / 3_600_000).toFixed(1)} h`;
}

/* ---------- the admin token ---------- */

function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  $("token-state").textContent = value ? "actions: token set" : "read-only";
  ($("token") as HTMLInputElement).value = "";
}

function takeTokenFromFragment(): void {
  // `/console#token=…` (never sent to the server, so never in its logs); removed from the address bar at once.
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  setToken(decodeURIComponent(m[1]!));
  history.replaceState(null, "", location.pathname + location.search);
}

/* ---------- the live feed ---------- */

let source: EventSource | null = null;
let retryTimer: number | null = null;

function connect(): void {
  source?.close();
  const es = new EventSource(base + "events");
  source = es;
  es.addEventListener("state", (e) => {
    state = JSON.parse((e as MessageEvent<string>).data) as ConsoleState;
    setConnection(true);
    schedule();
  });
  es.addEventListener("patch", (e) => {
    if (!state) return; // a patch before the whole state has nothing to apply to; the state follows
    applyPatch(JSON.parse((e as MessageEvent<string>).data) as ConsolePatch);
    schedule();
  });
  es.onerror = () => {
    setConnection(false);
    // The browser retries a dropped stream by itself; a refused one (503, a restart in progress)
    // closes it for good, so retry that one here.
    if (es.readyState === EventSource.CLOSED && retryTimer === null) {
      retryTimer = window.setTimeout(() => {
        retryTimer = null;
        connect();
      }, 2000);
    }
  };
}

function applyPatch(p: ConsolePatch): void {
  const { shards, ...rest } = p;
  let next: ConsoleState = { ...state!, ...rest };
  if (shards) {
    const all = next.shards.slice();
    for (const s of shards) all[s.shard] = s;
    next = { ...next, shards: all };
  }
  state = next;
}

function setConnection(live: boolean): void {
  const el = $("conn");
  el.textContent = live ? "live" : "reconnecting…";
  el.className = `conn ${live ? "live" : "down"}`;
}

function schedule(what: "all" | "rows" = "all"): void {
  if (what === "all") rowsOnly = false;
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    if (rowsOnly) drawShardRows();
    else draw();
    rowsOnly = true;
  });
}

/* ---------- drawing ---------- */

function draw(): void {
  if (!state) return;
  const s = state;
  $("served-by").textContent = `${s.servedBy} · v${s.version}`;
  const banner = $("banner");
  const warnings = [
    s.storeError,
    s.actionsEnabled ? null : "Actions are off: this cluster has no admin_token in its config.",
    s.primaryMaster ? null : "No primary master holds the lease: failover and actions wait for one.",
  ].filter((x): x is string => !!x);
  banner.hidden = warnings.length === 0;
  banner.textContent = warnings.join("  ·  ");
  drawSummary(s);
  filterShards();
  drawShardRows();
  drawDetail(s);
  drawNodes(s);
  drawTimeline(s);
  drawSettings(s);
}

function drawSummary(s: ConsoleState): void {
  const serving = s.shards.filter((x) => x.serving).length;
  const unowned = s.shards.filter((x) => x.owner === null).length;
  const pauses = s.settings?.pauses.length ?? 0;
  const item = (label: string, value: string | number, cls = "") => h("span", {}, h("b", { class: cls }, String(value)), ` ${label}`);
  $("shard-summary").replaceChildren(
    item("shards", s.shardCount),
    item("serving", serving, serving === s.shardCount ? "state-ok" : ""),
    item("not serving", s.shardCount - serving, serving === s.shardCount ? "" : "state-bad"),
    item("without owner", unowned, unowned > 0 ? "state-warn" : ""),
    item("standbys", s.standbys.length, s.standbys.length === 0 ? "state-warn" : ""),
    item("failover bound", ms(s.settings?.failoverBoundMs)),
    ...(pauses > 0 ? [item("pause(s)", pauses, "state-warn")] : []),
  );
}

function filterShards(): void {
  const q = ($("shard-filter") as HTMLInputElement).value.trim().toLowerCase();
  const all = state!.shards;
  if (q === "") filtered = all;
  else if (/^\d+$/.test(q)) filtered = all.filter((x) => String(x.shard).startsWith(q));
  else if (q === "unowned") filtered = all.filter((x) => x.owner === null);
  else if (q === "not serving") filtered = all.filter((x) => !x.serving);
  else filtered = all.filter((x) => (x.ownerName ?? "").toLowerCase().includes(q));
  $("filter-count").textContent = filtered.length === all.length ? "" : `${filtered.length} of ${all.length}`;
}

/** Only the rows in view (plus a margin) exist in the document: 1,024 shards cost what 40 do. */
function drawShardRows(): void {
  const list = $("shard-list");
  const spacer = $("shard-spacer");
  spacer.style.height = `${filtered.length * ROW_HEIGHT}px`;
  const first = Math.max(0, Math.floor(list.scrollTop / ROW_HEIGHT) - 5);
  const last = Math.min(filtered.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW_HEIGHT) + 5);
  const rows: HTMLElement[] = [];
  const paused = pausedShards();
  for (let i = first; i < last; i++) {
    const x = filtered[i]!;
    const status = x.owner === null ? ["no owner", "state-warn"] : x.serving ? ["serving", "state-ok"] : ["not serving", "state-bad"];
    const row = h(
      "div",
      { class: `row${x.shard === selected ? " selected" : ""}`, "data-shard": String(x.shard), style: `top:${i * ROW_HEIGHT}px` },
      h("span", {}, String(x.shard)),
      h("span", { class: "owner" }, x.ownerName ?? "—"),
      h("span", { class: "epoch" }, String(x.epoch)),
      h("span", { class: status[1]! }, status[0]! + (paused.has(x.shard) ? " · paused" : "")),
    );
    row.addEventListener("click", () => {
      selected = x.shard;
      schedule();
    });
    rows.push(row);
  }
  list.replaceChildren(spacer, ...rows);
}

function pausedShards(): Set<number | null> {
  return new Set((state?.settings?.pauses ?? []).map((p) => p.shard));
}

let detailKey = "";

function drawDetail(s: ConsoleState): void {
  const el = $("shard-detail");
  const x = selected === null ? undefined : s.shards[selected];
  if (!x) return;
  const paused = pausedShards().has(x.shard);
  // Redrawn only when what it shows changed: an open drop-down must not close under the operator.
  const key = JSON.stringify([x, s.standbys, paused]);
  if (key === detailKey) return;
  detailKey = key;
  const target = h("select", { id: "switch-target", "aria-label": "switchover target" }, h("option", { value: "" }, "any healthy standby"));
  const keep = (document.getElementById("switch-target") as HTMLSelectElement | null)?.value ?? "";
  for (const name of s.standbys) target.append(h("option", { value: name }, name));
  target.value = s.standbys.includes(keep) ? keep : "";
  const sw = h("button", { id: "switchover", type: "button" }, "Switchover…");
  sw.addEventListener("click", () => void switchover(x, target.value));
  const pause = h("button", { id: "pause-shard", type: "button" }, paused ? "Resume this shard" : "Pause this shard");
  pause.addEventListener("click", () => void (paused ? resume(x.shard) : pauseFailover(x.shard)));
  el.replaceChildren(
    h(
      "p",
      { id: "detail-text" },
      h("b", {}, `Shard ${x.shard}`),
      `: owner ${x.ownerName ?? "none"} at epoch ${x.epoch}, ${x.serving ? "serving" : "not serving"}. Eligible standbys: ${
        s.standbys.length ? s.standbys.join(", ") : "none"
      }.`,
    ),
    h("div", { class: "actions" }, "Move to ", target, sw, pause),
  );
}

const ROLE_ORDER = ["primary_master", "secondary_master", "master", "coreapp", "webapp"];

function drawNodes(s: ConsoleState): void {
  const q = ($("node-filter") as HTMLInputElement).value.trim().toLowerCase();
  const matching = s.nodes.filter((n) => q === "" || n.name.toLowerCase().includes(q) || n.role.includes(q) || n.address.includes(q));
  // Down nodes first within a role: they are what an operator looks for in a long list.
  const nodes = matching
    .sort(
      (a, b) =>
        ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role) || Number(a.healthy) - Number(b.healthy) || a.name.localeCompare(b.name),
    )
    .slice(0, MAX_NODE_ROWS);
  const roles = new Map<string, { up: number; down: number }>();
  for (const n of s.nodes) {
    const role = n.role.endsWith("master") ? "masters" : `${n.role}s`;
    const r = roles.get(role) ?? { up: 0, down: 0 };
    if (n.healthy) r.up++;
    else r.down++;
    roles.set(role, r);
  }
  $("node-summary").textContent = [...roles]
    .map(([role, r]) => `${r.up + r.down} ${role}${r.down ? ` (${r.down} down)` : ""}`)
    .concat(matching.length > MAX_NODE_ROWS ? [`showing ${MAX_NODE_ROWS} of ${matching.length}: filter to see the others`] : [])
    .join(" · ");
  const body = nodes.map((n: ConsoleNode) =>
    h(
      "tr",
      { "data-node": n.name },
      h("td", { class: "role" }, n.role.replace("_", " ")),
      h("td", {}, n.name),
      h("td", { class: n.healthy ? "state-ok" : "state-bad" }, n.healthy ? "up" : "down"),
      h(
        "td",
        {},
        n.role === "coreapp" ? (n.shard === null ? "standby" : `shard ${n.shard} @${n.epoch}${n.serving ? " serving" : ""}`) : "",
      ),
      h("td", {}, n.address || "—"),
      h("td", {}, ms(n.lastSeenMs)),
      h("td", { class: "muted" }, n.version ?? "—"),
    ),
  );
  const head = h("tr", {}, ...["role", "name", "health", "shard", "address", "last seen", "version"].map((t) => h("th", {}, t)));
  $("nodes").replaceChildren(h("table", {}, h("thead", {}, head), h("tbody", {}, ...body)));
}

function drawTimeline(s: ConsoleState): void {
  const bound = s.settings?.failoverBoundMs ?? 0;
  const items = s.history.map((e: ConsoleEvent) => {
    const when = new Date(e.atMs).toLocaleTimeString([], { hour12: false });
    const who = e.from !== null || e.to !== null ? ` ${e.from ?? "none"} → ${e.to ?? "none"}` : "";
    const epoch = e.epochs["to"] !== undefined ? ` at epoch ${e.epochs["to"]}` : "";
    let taken: Node | null = null;
    if (e.detectedAfterMs !== null && bound > 0) {
      const share = Math.min(1, e.detectedAfterMs / bound);
      taken = h(
        "span",
        { class: "taken" },
        " · failing ",
        h("b", {}, ms(e.detectedAfterMs)),
        h("span", { class: `bar${e.detectedAfterMs > bound ? " over" : ""}` }, h("span", { style: `width:${(share * 100).toFixed(0)}%` })),
        ` of the ${ms(bound)} bound`,
      );
    }
    return h(
      "li",
      { "data-seq": String(e.seq), "data-type": e.type },
      h("span", { class: "muted" }, when, " "),
      h("span", { class: `type ${e.type}` }, e.type.replace("_", " ")),
      " ",
      e.shard === null ? "cluster" : `shard ${e.shard}`,
      `${who}${epoch}`,
      h("div", { class: "muted cause" }, e.cause),
      taken,
    );
  });
  $("timeline").replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, "No events yet.")]));
}

function drawSettings(s: ConsoleState): void {
  const set = s.settings;
  if (!set) return;
  const pairs: [string, string][] = Object.entries(set.values).map(([k, v]) => [k, k.endsWith("quorum") ? String(v) : ms(v)]);
  pairs.push(["failover bound", ms(set.failoverBoundMs)], ["settings version", String(set.version)]);
  // Two settings per row: the panel stays short enough for a laptop screen.
  const rows: HTMLElement[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    rows.push(h("tr", {}, ...pairs.slice(i, i + 2).flatMap(([k, v]) => [h("th", {}, k), h("td", {}, v)])));
  }
  const pauses = set.pauses.map((p) =>
    h(
      "li",
      {},
      h("b", { class: "state-warn" }, `PAUSED ${p.shard === null ? "(whole cluster)" : `shard ${p.shard}`}`),
      ` by ${p.by}${p.reason ? `: ${p.reason}` : ""}; ends in ${ms(p.endsInMs)}`,
    ),
  );
  const held = set.heldOut.length ? h("p", { class: "state-warn" }, `Held out of promotion: ${set.heldOut.join(", ")}`) : null;
  $("settings").replaceChildren(
    h("table", {}, h("tbody", {}, ...rows)),
    pauses.length ? h("ul", { id: "pauses" }, ...pauses) : h("p", { id: "pauses", class: "muted" }, "Automatic failover is on."),
    ...(held ? [held] : []),
  );
}

/* ---------- actions (admin API, with the token and a confirmation) ---------- */

function confirmAction(text: string): Promise<boolean> {
  const dialog = $<HTMLDialogElement>("confirm");
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

function toast(text: string, error = false): void {
  const el = $("toast");
  el.textContent = text;
  el.className = error ? "error" : "";
  el.hidden = false;
  window.setTimeout(() => {
    if (el.textContent === text) el.hidden = true;
  }, 8000);
}

async function admin(path: string, body: Record<string, unknown>): Promise<Record<string, unknown> | null> {
  const t = token();
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (t) headers["authorization"] = `Bearer ${t}`;
  try {
    const r = await fetch(mount + path, { method: "POST", headers, body: JSON.stringify(body) });
    const answer = (await r.json().catch(() => ({}))) as { errors?: { code: number; title: string; details: string }[] };
    if (r.ok) return answer as Record<string, unknown>;
    const e = answer.errors?.[0];
    toast(`Refused (${r.status}${e ? ` ${e.code} ${e.title}` : ""}): ${e?.details ?? r.statusText}`, true);
  } catch (error) {
    toast(`The request failed: ${(error as Error).message}`, true);
  }
  return null;
}

async function switchover(x: ConsoleShard, to: string): Promise<void> {
  const target = to || "any healthy standby";
  const ok = await confirmAction(
    `Move shard ${x.shard} from ${x.ownerName ?? "no owner"} (epoch ${x.epoch}) to ${target}? ` +
      "The current primary is fenced at a new epoch and stops before the new one starts; requests wait for it.",
  );
  if (!ok) return;
  toast(`Switchover of shard ${x.shard} requested…`);
  const r = await admin("v1/admin/switchover", { shard: x.shard, ...(to ? { to } : {}) });
  if (r) toast(`Shard ${x.shard} moved at epoch ${String(r["epoch"])}; the new owner served after ${ms(r["gap_ms"] as number | null)}.`);
}

async function pauseFailover(shard: number | null): Promise<void> {
  const duration = ($("pause-duration") as HTMLInputElement).value.trim() || "1h";
  const reason = ($("pause-reason") as HTMLInputElement).value.trim();
  const what = shard === null ? "the whole cluster" : `shard ${shard}`;
  if (!(await confirmAction(`Pause automatic failover of ${what} for ${duration}? A failed primary is not replaced until resumed.`)))
    return;
  if (await admin("v1/admin/pause", { shard, duration, reason })) toast(`Automatic failover of ${what} paused for ${duration}.`);
}

async function resume(shard: number | null): Promise<void> {
  const what = shard === null ? "the whole cluster" : `shard ${shard}`;
  if (!(await confirmAction(`Resume automatic failover of ${what}?`))) return;
  if (await admin("v1/admin/resume", { shard })) toast(`Automatic failover of ${what} resumed.`);
}

/* ---------- start ---------- */

function start(): void {
  takeTokenFromFragment();
  setToken(token());
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(($("token") as HTMLInputElement).value.trim() || null);
  });
  $("token-forget").addEventListener("click", () => setToken(null));
  $("shard-filter").addEventListener("input", () => {
    $("shard-list").scrollTop = 0;
    schedule();
  });
  $("shard-list").addEventListener("scroll", () => schedule("rows"), { passive: true });
  $("node-filter").addEventListener("input", () => schedule());
  window.addEventListener("resize", () => schedule());
  $("pause-cluster").addEventListener("click", () => void pauseFailover(null));
  $("resume-cluster").addEventListener("click", () => void resume(null));
  connect();
}

start();
