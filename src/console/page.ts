/**
 * The console's page and style. The page's script is src/console/client/app.ts (compiled by
 * `npm run build`); the markup here is only the frame it fills. URLs are relative, so the console
 * works below a mount point (an Express app mounting the webapp at `/api` serves `/api/console`).
 */

/** The page (`GET /console`). */
export function consolePage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>multiconnect console</title>
<link rel="stylesheet" href="console/app.css">
<script type="module" src="console/app.js"></script>
</head>
<body>
<header>
  <h1>multiconnect</h1>
  <span id="served-by" class="muted"></span>
  <span id="conn" class="conn down" data-testid="connection">connecting…</span>
  <span class="spacer"></span>
  <form id="token-form" autocomplete="off">
    <input id="token" type="password" placeholder="admin token (for actions)" aria-label="admin token" autocomplete="off">
    <button id="token-use" type="submit">Use token</button>
    <button id="token-forget" type="button">Forget</button>
  </form>
  <span id="token-state" class="muted">read-only</span>
</header>
<div id="banner" class="banner" hidden></div>
<main>
  <div id="left" class="col">
  <section id="shards-panel">
    <h2>Shards</h2>
    <div id="shard-summary" class="summary"></div>
    <div class="filter">
      <input id="shard-filter" type="search" placeholder="filter: shard number, owner name, unowned, not serving" aria-label="filter shards">
      <span id="filter-count" class="muted"></span>
    </div>
    <div class="row head"><span>shard</span><span>owner</span><span>epoch</span><span>status</span></div>
    <div id="shard-list" class="vlist" tabindex="0"><div id="shard-spacer"></div></div>
    <div id="shard-detail" class="detail"><p class="muted">Select a shard for its standbys and actions.</p></div>
  </section>
  <section id="settings-panel">
    <h2>Settings and pauses</h2>
    <div id="settings"></div>
    <div class="actions">
      <input id="pause-duration" value="1h" size="5" aria-label="pause duration">
      <input id="pause-reason" placeholder="reason" aria-label="pause reason">
      <button id="pause-cluster" type="button">Pause failover</button>
      <button id="resume-cluster" type="button">Resume failover</button>
    </div>
  </section>
  </div>
  <section id="side" class="col">
    <div id="nodes-panel">
      <h2>Nodes</h2>
      <div class="filter">
        <input id="node-filter" type="search" placeholder="filter: name, role, address" aria-label="filter nodes">
        <span id="node-summary" class="muted"></span>
      </div>
      <div id="nodes" class="scroll"></div>
    </div>
    <div id="timeline-panel">
      <h2>Failover timeline</h2>
      <ol id="timeline" class="timeline"></ol>
    </div>
  </section>
</main>
<dialog id="confirm">
  <form method="dialog">
    <p id="confirm-text"></p>
    <div class="actions right">
      <button id="confirm-cancel" value="cancel">Cancel</button>
      <button id="confirm-ok" value="ok" class="danger">Confirm</button>
    </div>
  </form>
</dialog>
<div id="toast" role="status" aria-live="polite" hidden></div>
</body>
</html>
`;
}

/** The style (`GET /console/app.css`): fits a 1366×768 laptop screen; one column below 1100 px. */
export const CONSOLE_CSS = `
:root { --bg: #f6f7f9; --panel: #fff; --line: #dde1e6; --text: #1d2329; --muted: #68717a; --ok: #1a7f37; --bad: #c62828;
  --warn: #9a6700; --accent: #0b5cad; --row: 26px; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); }
header { display: flex; align-items: center; gap: 12px; padding: 8px 16px; background: #1d2329; color: #fff; }
header h1 { font-size: 16px; margin: 0; }
header .muted { color: #aab2bb; }
.spacer { flex: 1; }
.conn { padding: 2px 8px; border-radius: 10px; font-size: 12px; }
.conn.live { background: var(--ok); }
.conn.down { background: var(--bad); }
header input { width: 220px; }
input, button { font: inherit; padding: 3px 8px; border: 1px solid var(--line); border-radius: 4px; }
button { background: #fff; cursor: pointer; }
button:hover { border-color: var(--accent); }
button.danger { background: var(--bad); color: #fff; border-color: var(--bad); }
button:disabled { opacity: .5; cursor: default; }
.banner { padding: 6px 16px; background: #fff4ce; color: var(--warn); border-bottom: 1px solid #e6d48a; }
main { display: grid; grid-template-columns: minmax(420px, 5fr) 6fr; gap: 12px; padding: 12px 16px; align-items: start; }
@media (max-width: 1100px) { main { grid-template-columns: 1fr; } }
.col { display: flex; flex-direction: column; gap: 12px; min-width: 0; }
#left { height: calc(100vh - 66px); min-height: 560px; }
#shards-panel { flex: 1; display: flex; flex-direction: column; min-height: 0; }
section, #side > div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; min-width: 0; }
#side { padding: 0; border: 0; background: none; }
h2 { font-size: 14px; margin: 0 0 8px; }
.muted { color: var(--muted); }
.summary { display: flex; flex-wrap: wrap; gap: 6px 16px; margin-bottom: 8px; }
.summary b { font-size: 15px; }
.filter { display: flex; gap: 8px; align-items: center; margin-bottom: 6px; }
.filter input { flex: 1; }
.row { display: grid; grid-template-columns: 60px 1fr 70px 110px; gap: 8px; align-items: center; height: var(--row); padding: 0 6px; }
.row.head { font-weight: 600; color: var(--muted); border-bottom: 1px solid var(--line); }
.vlist { position: relative; flex: 1; min-height: 160px; overflow-y: auto; border-bottom: 1px solid var(--line); }
.vlist .row { position: absolute; left: 0; right: 0; cursor: pointer; border-bottom: 1px solid #f0f2f4; }
.vlist .row:hover, .vlist .row.selected { background: #eaf2fb; }
.state-ok { color: var(--ok); }
.state-bad { color: var(--bad); font-weight: 600; }
.state-warn { color: var(--warn); }
.detail { margin-top: 8px; }
.detail .actions, .actions { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-top: 6px; }
.actions.right { justify-content: flex-end; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #f0f2f4; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; max-width: 220px; }
th { color: var(--muted); font-weight: 600; }
td.role { font-weight: 600; }
.scroll { max-height: 300px; overflow-y: auto; }
.timeline { list-style: none; margin: 0; padding: 0; max-height: calc(100vh - 420px); min-height: 200px; overflow-y: auto; }
.timeline li { padding: 5px 0; border-bottom: 1px solid #f0f2f4; }
.timeline .type { display: inline-block; min-width: 84px; font-weight: 600; }
.timeline .type.promoted { color: var(--bad); }
.timeline .type.switchover { color: var(--accent); }
.bar { display: inline-block; vertical-align: middle; width: 120px; height: 8px; background: #e8ebef; border-radius: 4px; overflow: hidden; margin: 0 6px; }
.bar > span { display: block; height: 100%; background: var(--ok); }
.bar.over > span { background: var(--bad); }
dialog { border: 1px solid var(--line); border-radius: 6px; max-width: 460px; }
#toast { position: fixed; bottom: 16px; right: 16px; max-width: 480px; padding: 8px 12px; border-radius: 6px; background: #1d2329; color: #fff; }
#toast.error { background: var(--bad); }
`;
