// The console's one WebSocket to the node that served the page, speaking the
// node's ordinary JSON protocol (docs/protocol.md): requests pipelined and
// matched by id, notifications dispatched by token, a reconnect with back-off
// when the connection drops, and a silent re-login on reconnect while the
// password is held in memory (never in storage).

import { NO_POLL, pollAfter } from "./dom.js";

const REQUEST_TIMEOUT_MS = 15000;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;
// While logged in, a request at least this often: the node drops a deleted user's rights
// without a word (its notifications just stop), and only a refused request says so.
const SESSION_CHECK_MS = 3000;

/** An error the node (or the connection) reported: `kind` is the protocol's error kind. */
export class QcoreError extends Error {
  constructor(message, kind = "unknown", details = null) {
    super(message);
    this.name = "QcoreError";
    this.kind = kind;
    this.details = details;
  }
}

/** ws://host:port/ for a page served over http, wss:// over https. */
export function wsUrl(loc = window.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/`;
}

/** The value of a `{"Ok": v}` / `"Ok"` / `{"Err": text}` union reply, or a QcoreError. */
export function unwrapResult(body) {
  const r = body.response;
  if (r === "Ok") return null;
  if (r && typeof r === "object" && "Ok" in r) return r.Ok;
  if (r && typeof r === "object" && "Err" in r) throw new QcoreError(String(r.Err), body.kind || "unknown");
  throw new QcoreError(`unexpected reply: ${JSON.stringify(body).slice(0, 200)}`, "internal");
}

/**
 * Events: "state" (detail: {state, retryMs}), "auth-required" (detail: the error),
 * "node-error" (an Error frame that answers no request of ours).
 * States: connecting -> open (authenticating) -> ready -> closed -> connecting ...
 */
export class Connection extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.state = "closed";
    this.retryMs = RETRY_FIRST_MS;
    this.credentials = null; // {user, password}: in memory for this tab's life only
    this.session = null; // the Authenticate reply: {user, roles, entity}
    this.nodeId = null; // the id of the node the page talks to (from GetMetrics)
    this._ids = 0;
    this._pending = new Map(); // request id -> {resolve, reject, timer}
    this._watchers = new Map(); // notification token -> callback
    this._retryTimer = null;
    this._sessionTimer = NO_POLL;
  }

  start() {
    this._open();
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit("state", { state, ...extra });
  }

  _open() {
    clearTimeout(this._retryTimer);
    this._setState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this._onOpen(ws);
    ws.onmessage = (ev) => this._onFrame(ev.data);
    ws.onclose = (ev) => this._onClose(ws, ev);
  }

  async _onOpen(ws) {
    this.retryMs = RETRY_FIRST_MS;
    this._setState("open");
    if (this.credentials) {
      try {
        await this._authenticate(this.credentials.user, this.credentials.password);
      } catch (err) {
        if (this.ws !== ws) return;
        this.credentials = null;
        this.session = null;
        if (err.kind !== "unavailable") this._emit("auth-required", err);
      }
    }
    if (this.ws === ws && ws.readyState === WebSocket.OPEN) this._setState("ready");
  }

  _onClose(ws, ev) {
    if (this.ws !== ws) return;
    this.ws = null;
    const lost = new QcoreError("the connection to the node was lost", "unavailable");
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(lost);
    }
    this._pending.clear();
    this._watchers.clear(); // registrations end with their connection
    const delay = this.retryMs;
    this.retryMs = Math.min(Math.max(delay * 2, RETRY_FIRST_MS), RETRY_MAX_MS);
    this._setState("closed", { code: ev.code, reason: ev.reason, retryMs: delay });
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  /** Drop the connection and open a new one (a logout: the node forgets who we were). */
  reconnect() {
    const ws = this.ws;
    if (ws) {
      this.retryMs = 0;
      ws.close(1000, "reconnect");
    } else {
      this._open();
    }
  }

  _onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this._emit("node-error", new QcoreError("the node sent a frame that is not JSON", "internal"));
      return;
    }
    const tag = Object.keys(msg)[0];
    const body = msg[tag];
    if (tag === "Notification") {
      const watcher = this._watchers.get(body.token);
      if (watcher) watcher(body.notification);
      return;
    }
    const p = body && this._pending.get(body.id);
    if (tag === "Error" && body && body.kind === "auth_required") this._authRequired(new QcoreError(body.error, body.kind, body));
    if (!p) {
      if (tag === "Error") this._emit("node-error", new QcoreError(body.error, body.kind, body));
      return;
    }
    this._pending.delete(body.id);
    clearTimeout(p.timer);
    if (tag === "Error") p.reject(new QcoreError(body.error, body.kind, body));
    else p.resolve({ tag, body });
  }

  _send(tag, fields, timeoutMs = REQUEST_TIMEOUT_MS) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new QcoreError("not connected to the node (reconnecting)", "unavailable"));
    }
    const id = `c${++this._ids}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new QcoreError(`no answer from the node to ${tag} within ${timeoutMs / 1000} s`, "outcome_unknown"));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ [tag]: { id, ...fields } }));
    });
  }

  /** Send one request; resolves {tag, body} of its reply, rejects a QcoreError for an Error reply. */
  request(tag, fields = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (this.state !== "ready") {
      return Promise.reject(new QcoreError("not connected to the node (reconnecting)", "unavailable"));
    }
    return this._send(tag, fields, timeoutMs);
  }

  /** A request whose reply is a result union: its Ok value. */
  async result(tag, fields = {}, timeoutMs = REQUEST_TIMEOUT_MS) {
    const { body } = await this.request(tag, fields, timeoutMs);
    return this._checked(() => unwrapResult(body));
  }

  /** One CommandRequest in a Perform: the command's `response`, or a QcoreError with its `error`. */
  async perform(command) {
    const { body } = await this.request("Perform", { request: command });
    const variant = Object.keys(body.response)[0];
    const r = body.response[variant];
    if (r.error !== null && r.error !== undefined) {
      const err = new QcoreError(r.error, r.kind || "rejected");
      if (err.kind === "auth_required") this._authRequired(err);
      throw err;
    }
    return r.response;
  }

  _checked(fn) {
    try {
      return fn();
    } catch (err) {
      if (err.kind === "auth_required") this._authRequired(err);
      throw err;
    }
  }

  /** RegisterNotification; `onNotification(notification)` for each change. Returns the token. */
  async watch(config, onNotification) {
    const { body } = await this.request("RegisterNotification", { config });
    const token = this._checked(() => unwrapResult(body));
    // Set before any later frame is read: a reply's continuation runs before the next message event.
    this._watchers.set(token, onNotification);
    return token;
  }

  /** UnregisterNotification; a registration that ended with its connection needs none. */
  async unwatch(token) {
    if (!this._watchers.delete(token) || this.state !== "ready") return;
    try {
      await this.result("UnregisterNotification", { token });
    } catch (err) {
      if (err.kind !== "not_found" && err.kind !== "unavailable") throw err;
    }
  }

  async _authenticate(user, password) {
    const { body } = await this._send("Authenticate", { user, password });
    this.session = unwrapResult(body);
    this.credentials = { user, password };
    this._checkSession();
    return this.session;
  }

  /** The node refused a request for want of a login (never logged in, or the user was deleted). */
  _authRequired(err) {
    this._sessionTimer.cancel(); // a login starts the checks again
    this._emit("auth-required", err);
  }

  /**
   * While a user is logged in and the connection is up, a GetMetrics (cheap, local, allowed
   * to every user) every SESSION_CHECK_MS while the page is shown (at once when it is shown
   * again): if the user was deleted meanwhile, its refusal ("auth-required", from _onFrame) is
   * how the page learns it.
   */
  _checkSession() {
    this._sessionTimer.cancel();
    this._sessionTimer = pollAfter(SESSION_CHECK_MS, async () => {
      if (!this.session || this.state !== "ready") return; // a re-login after a reconnect starts it again
      try {
        await this.request("GetMetrics");
      } catch (err) {
        if (err.kind === "auth_required") return; // reported by _onFrame; a login starts the checks again
        // Anything else (a lost connection) is shown by the state events.
      }
      if (this.session) this._checkSession();
    });
  }

  /** Log in on this connection; the password stays in memory for re-logins after a reconnect. */
  async login(user, password) {
    const session = await this._authenticate(user, password);
    if (this.state === "open") this._setState("ready");
    return session;
  }

  /** Forget the user and start a fresh, unauthenticated connection. */
  logout() {
    this._sessionTimer.cancel();
    this.credentials = null;
    this.session = null;
    this.reconnect();
  }
}
