// The console's wiring: one connection, the cluster view, the tree and search,
// the entity view, and the login; the open entity is in the URL's fragment
// (#Sensor$12), so it can be bookmarked and the back button works.

import { Connection, QcoreError, wsUrl } from "./conn.js";
import { ClusterView } from "./cluster.js";
import { h, errorText, fill, isPassing } from "./dom.js";
import { EntityActions } from "./entity_actions.js";
import { EntityView } from "./entity.js";
import { Login } from "./login.js";
import { Permissions } from "./perms.js";
import { allEntityTypes, ChildrenReader } from "./queries.js";
import { Search } from "./search.js";
import { EntityTree } from "./tree.js";
import { idText, parseId } from "./values.js";

const $ = (sel) => document.querySelector(sel);

const conn = new Connection(wsUrl());
const perms = new Permissions();
const childReader = new ChildrenReader(conn);
let types = null;
let typesFailed = false; // the search's types could not be read for a passing cause

function entityTypes() {
  if (!types) types = allEntityTypes(conn).catch((err) => { types = null; throw err; });
  return types;
}

// What failed to load for want of a leader (the page's node back before a majority) is read
// again by itself once the page's node reports a leader: no panel keeps a stale "no leader".
const cluster = new ClusterView($("#cluster"), conn, {
  onHealthy: () => {
    tree.retryFailed();
    entity.retryFailed();
    if (typesFailed) loadTypes();
  },
});
const tree = new EntityTree($("#tree"), conn, { childReader, onOpen: openEntity });
const search = new Search($("#search"), conn, { onOpen: openEntity });
const entity = new EntityView($("#entity"), conn, {
  perms, childReader, onOpen: openEntity,
  actions: new EntityActions(conn, perms, entityTypes),
  onChildrenChanged: (eid, how) => tree.refresh(eid, how),
  onRenamed: (eid, name) => tree.rename(eid, name),
  onGone: (eid, parentId, byUs) => {
    if (parentId) tree.refresh(parentId);
    else tree.remove(eid);
    if (byUs && parentId) openEntity(parentId);
  },
});
const login = new Login(conn, {
  onLogin: (session) => {
    perms.reset(session);
    showUser();
    loadAll();
  },
});

function fragmentId() {
  return parseId(decodeURIComponent(location.hash.slice(1)));
}

/** Open an entity: through the URL's fragment, so that it goes into the history. */
function openEntity(eid) {
  const fragment = `#${idText(eid)}`;
  if (location.hash === fragment) showEntity(eid);
  else location.hash = fragment;
}

function showEntity(eid) {
  tree.select(eid);
  entity.open(eid);
  if (window.matchMedia("(max-width: 800px)").matches) $("#entity").scrollIntoView({ block: "start" });
}

window.addEventListener("hashchange", () => {
  const eid = fragmentId();
  if (eid) showEntity(eid);
});

function showUser() {
  const el = $("#user");
  const s = conn.session;
  el.hidden = !s;
  if (!s) return;
  fill(el, "user ", h("strong", {}, s.user), s.roles.length ? ` (${s.roles.join(", ")})` : "", " ",
    h("button", { type: "button", onclick: () => login.logout() }, "Log out"));
}

async function loadAll() {
  // An entity opened while the tree and types load (the user did not wait for them) was read
  // and followed on this connection already: opening it again would read it again, and turn
  // an editor open by then into a "kept" one even when its save went through.
  const opened = entity.gen;
  types = null;
  cluster.start();
  try {
    const { body } = await conn.request("GetMetrics");
    conn.nodeId = body.response.id;
    showStatus();
  } catch {
    // The cluster view and the tree say what is wrong.
  }
  await Promise.all([tree.loadRoots(), loadTypes()]);
  const eid = fragmentId();
  if (eid && entity.gen === opened) showEntity(eid);
}

async function loadTypes() {
  typesFailed = false;
  try {
    search.setTypes(await entityTypes());
  } catch (err) {
    typesFailed = isPassing(err);
  }
}

function showStatus(detail = { state: conn.state }) {
  const el = $("#conn-status");
  const where = location.host;
  el.classList.toggle("error", detail.state === "closed");
  switch (detail.state) {
    case "connecting": el.textContent = `connecting to ${where}…`; break;
    case "open": el.textContent = `connected to ${where}, logging in…`; break;
    case "ready":
      el.textContent = conn.nodeId !== null && conn.nodeId !== undefined
        ? `connected to node ${conn.nodeId} at ${where}` : `connected to ${where}`;
      break;
    case "closed":
      el.textContent = `disconnected from ${where}; retrying in ${Math.round((detail.retryMs || 0) / 100) / 10} s`;
      break;
    default: el.textContent = detail.state;
  }
}

conn.addEventListener("state", (e) => {
  showStatus(e.detail);
  // The registrations ended with the connection: the open entity is followed again once it is back.
  if (e.detail.state === "closed") entity.notFollowing(new QcoreError("the connection to the node was lost", "unavailable"));
  if (e.detail.state === "ready") {
    showUser();
    loadAll();
  }
});
conn.addEventListener("auth-required", (e) => {
  cluster.stop();
  entity.notFollowing(e.detail);
  login.prompt(e.detail);
});
conn.addEventListener("node-error", (e) => {
  const el = $("#conn-status");
  el.classList.add("error");
  el.textContent = `the node says: ${errorText(e.detail)}`;
});
$("#tree-reload").addEventListener("click", () => tree.loadRoots());

conn.start();
