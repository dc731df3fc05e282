// Building DOM nodes without innerHTML: every text the node sends is set as
// text, never parsed as markup, so a name like "<img onerror=...>" stays a name.

/**
 * h("button", {class: "x", onclick: fn, disabled: true}, "text", child)
 * Attributes that are null, undefined or false are left out; true sets an empty one.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" || k === "checked") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Show an error (or clear it with null) in a message element the user is looking at. */
export function showError(el, err) {
  if (!err) {
    el.hidden = true;
    el.replaceChildren();
    return;
  }
  el.hidden = false;
  el.setAttribute("role", "alert");
  el.textContent = errorText(err);
}

// Errors that say the cluster could not serve a request just now (no leader, the node
// away), not that the request was wrong: what failed so is read again once it can be.
const PASSING = new Set(["no_leader", "not_leader", "unavailable", "outcome_unknown", "overloaded", "shutting_down"]);

export function isPassing(err) {
  return !!err && PASSING.has(err.kind);
}

export function errorText(err) {
  if (err && err.kind) return `${err.message} (${err.kind})`;
  return err && err.message ? err.message : String(err);
}

/**
 * The timer of a periodic request: `fn` runs `ms` from now, but not while the page is hidden
 * (a background tab, a minimised window): then it waits, and runs as soon as the page is shown
 * again. So a page nobody looks at sends no periodic requests, and is up to date once looked at.
 * Returns `{cancel}`.
 */
export function pollAfter(ms, fn) {
  const shown = () => {
    if (document.visibilityState === "hidden") return;
    document.removeEventListener("visibilitychange", shown);
    fn();
  };
  const timer = setTimeout(() => {
    if (document.visibilityState === "hidden") document.addEventListener("visibilitychange", shown);
    else fn();
  }, ms);
  return {
    cancel() {
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", shown);
    },
  };
}

/** A pollAfter() handle for no timer at all. */
export const NO_POLL = { cancel() {} };

/** The time of day as HH:MM:SS, for "updated at" lines. */
export function clock(date = new Date()) {
  return date.toTimeString().slice(0, 8);
}
