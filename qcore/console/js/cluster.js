// The cluster view: every member's role, term, commit/applied, lag and health,
// from GetClusterMetrics (the connected node asks every member, and marks the
// ones that do not answer), polled about once a second while the page is shown.

import { clock, errorText, fill, h, NO_POLL, pollAfter } from "./dom.js";

const POLL_MS = 1000;
// A refresh unanswered this long: the page's node hangs (stopped, swapping) with its connection
// open, so the rows stop claiming what they showed, well before the request's own 15 s timeout.
// (The node gives each member 1.5 s to answer.)
const STALE_MS = 5000;

function indexOf(logId) {
  return logId && typeof logId.index === "number" ? logId.index : 0;
}

/**
 * One row per member, as `qcore-cli status` computes them (qcore/client/cluster.py):
 * lag is how far the member's applied index is behind the highest commit index
 * any member reports.
 */
export function memberRows(view) {
  const members = view.members || [];
  const top = Math.max(0, ...members.map((m) => (m.metrics && m.metrics.commit_index) || 0));
  return members.map((m) => {
    const mt = m.metrics;
    const row = { id: m.id, addr: m.addr, kind: m.kind, leader: m.id === view.leader };
    if (!mt) return { ...row, up: false, role: "—", health: `down: ${m.error || "unreachable"}` };
    const applied = indexOf(mt.last_applied);
    let health = "ok";
    if (mt.initialised === false) health = "not initialised";
    else if (mt.current_leader === null || mt.current_leader === undefined) health = "no leader";
    else if (applied < (mt.commit_index || 0)) health = "catching up";
    return {
      ...row, up: true, role: mt.state, term: mt.current_term, commit: mt.commit_index, applied,
      lag: Math.max(0, top - applied), health,
    };
  });
}

export class ClusterView {
  /** `onHealthy()` after each refresh in which the page's own node reports `ok` (it knows a leader). */
  constructor(root, conn, { onHealthy = () => {} } = {}) {
    this.root = root;
    this.conn = conn;
    this.onHealthy = onHealthy;
    this.timer = NO_POLL;
    this.running = false;
    this.downSince = new Map(); // member id -> time it was first seen down
    this.status = h("p", { class: "panel-status", "aria-live": "polite" });
    this.table = h("table", { class: "cluster" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Node"), h("th", { scope: "col" }, "Role"),
        h("th", { scope: "col", class: "num wide-only" }, "Term"), h("th", { scope: "col", class: "num wide-only" }, "Commit"),
        h("th", { scope: "col", class: "num wide-only" }, "Applied"), h("th", { scope: "col", class: "num", title: "entries applied behind the highest commit index" }, "Lag"),
        h("th", { scope: "col" }, "Health"))),
      this.tbody = h("tbody"));
    fill(root, h("div", { class: "panel-head" }, h("h2", {}, "Cluster"), this.status),
      h("div", { class: "scroll-x" }, this.table));
  }

  start() {
    if (this.running) return;
    this.running = true;
    this._poll();
  }

  stop() {
    this.running = false;
    this.timer.cancel();
  }

  async _poll() {
    this.timer.cancel();
    const stale = setTimeout(() => this._showStale(), STALE_MS);
    try {
      const view = await this.conn.result("GetClusterMetrics");
      if (!this.running) return;
      this.render(view);
    } catch (err) {
      this._showError(err);
      if (!this.running) return;
      if (err.kind === "auth_required" || err.kind === "permission_denied") {
        this.stop(); // started again after a login
        return;
      }
    } finally {
      clearTimeout(stale);
    }
    if (this.running) this.timer = pollAfter(POLL_MS, () => this._poll());
  }

  _showError(err) {
    this.status.classList.add("error");
    this.status.textContent = err.kind === "unavailable" ? "not connected to the node" : errorText(err);
    if (err.kind !== "auth_required" && err.kind !== "permission_denied") this._renderUnknown();
  }

  _showStale() {
    if (!this.running) return;
    this.status.classList.add("error");
    this.status.textContent = `no answer from the node this page talks to for ${STALE_MS / 1000} s`;
    this._renderUnknown();
  }

  /**
   * No answer from the page's node: what each member was is no longer known, so no
   * row keeps claiming a role or "ok" (the page's own node may be the one down).
   */
  _renderUnknown() {
    for (const tr of this.tbody.querySelectorAll("tr")) {
      tr.classList.remove("leader");
      tr.classList.add("down");
      tr.dataset.role = "";
      tr.dataset.health = "unknown";
      for (const td of tr.querySelectorAll("td")) {
        if (td.classList.contains("health")) {
          td.className = "health warn";
          td.textContent = "unknown: no answer from the node this page talks to";
        } else {
          td.textContent = "—";
        }
      }
    }
  }

  render(view) {
    const rows = memberRows(view);
    const now = new Date();
    this.status.classList.remove("error");
    const leader = rows.find((r) => r.leader);
    this.status.textContent = `${leader ? `leader: node ${leader.id}` : "no leader"} · ${rows.length} members · ` +
      `updated ${clock(now)}`;
    fill(this.tbody, rows.map((r) => {
      if (r.up) this.downSince.delete(r.id);
      else if (!this.downSince.has(r.id)) this.downSince.set(r.id, now);
      const here = this.conn.nodeId === r.id;
      const healthClass = r.up ? (r.health === "ok" ? "ok" : "warn") : "down";
      const health = r.up ? r.health : `${r.health} (since ${clock(this.downSince.get(r.id))})`;
      return h("tr", {
        class: [r.leader ? "leader" : "", r.up ? "" : "down"].join(" ").trim() || null,
        dataset: { nodeId: String(r.id), role: r.role, health: r.up ? r.health : "down" },
      },
      h("th", { scope: "row" }, String(r.id),
        here ? h("span", { class: "badge here", title: "the node this page talks to" }, "this page") : null,
        h("div", { class: "addr" }, r.addr || "address unknown")),
      h("td", { class: "role" }, r.leader ? h("span", { class: "badge leader" }, "★ Leader") : r.role,
        // A learner that answers says so as its role; the badge is for one that does not.
        r.kind === "learner" && r.role !== "Learner" ? h("span", { class: "badge" }, "learner") : null),
      h("td", { class: "num wide-only term" }, r.term ?? "—"),
      h("td", { class: "num wide-only commit" }, r.commit ?? "—"),
      h("td", { class: "num wide-only applied" }, r.applied ?? "—"),
      h("td", { class: "num lag" }, r.lag ?? "—"),
      h("td", { class: `health ${healthClass}` }, health));
    }));
    const mine = rows.find((r) => r.id === this.conn.nodeId);
    if (mine && mine.health === "ok") this.onHealthy();
  }
}
