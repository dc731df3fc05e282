// Values in the protocol's tagged JSON (SPEC 2.3): {"Int": 42}, {"EntityReference": {"typ", "id"}}, ...
// How the console shows them, and entity ids and timestamps as text.

import { h } from "./dom.js";

/** The variant of a tagged value ("Int", "Blob", ...), or null. */
export function kindOf(value) {
  return value && typeof value === "object" ? Object.keys(value)[0] : null;
}

/** {"typ": "User", "id": 3} -> "User$3" (the text form of SPEC 2.3). */
export function idText(eid) {
  return eid ? `${eid.typ}$${eid.id}` : "null";
}

const ID_TEXT = /^([A-Za-z_][A-Za-z0-9_]*)\$(\d{1,16})$/;

/** "User$3" -> {"typ": "User", "id": 3}; null if it is not an id the browser can hold exactly. */
export function parseId(text) {
  const m = ID_TEXT.exec(String(text).trim());
  if (!m) return null;
  const id = Number(m[2]);
  return Number.isSafeInteger(id) ? { typ: m[1], id } : null;
}

export function sameId(a, b) {
  return !!a && !!b && a.typ === b.typ && a.id === b.id;
}

function dateOf(ts) {
  const d = new Date(ts.secs_since_epoch * 1000 + Math.floor(ts.nanos_since_epoch / 1e6));
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A Timestamp as "2026-11-25 17:58:21.123 UTC". */
export function timeText(ts) {
  if (!ts) return "";
  const d = dateOf(ts);
  if (!d) return `${ts.secs_since_epoch} s since the epoch`;
  return d.toISOString().replace("T", " ").replace("Z", " UTC");
}

/** A Timestamp to the nanosecond, for a tooltip. */
export function timeFull(ts) {
  if (!ts) return "";
  const d = dateOf(ts);
  const nanos = String(ts.nanos_since_epoch).padStart(9, "0");
  return d ? `${d.toISOString().slice(0, 19).replace("T", " ")}.${nanos} UTC` : timeText(ts);
}

/** A Timestamp as the value of an <input type="datetime-local"> read as UTC. */
export function toDatetimeLocal(ts) {
  const d = ts && dateOf(ts);
  return d ? d.toISOString().slice(0, 23) : "";
}

/** The text of a datetime-local input, as UTC, to a Timestamp; null if it is not a time. */
export function fromDatetimeLocal(text) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/.test(text)) return null;
  const ms = Date.parse(`${text}Z`);
  if (Number.isNaN(ms) || ms < 0) return null;
  return { secs_since_epoch: Math.floor(ms / 1000), nanos_since_epoch: (ms % 1000) * 1e6 };
}

/** The name of a Choice's index, from the field's schema. */
export function choiceName(index, field) {
  const choices = field && field.choices;
  return choices && index >= 0 && index < choices.length ? choices[index] : null;
}

const LIST_SHOWN = 20;

/**
 * A value as DOM for the fields table. `open(eid)` is called when the user
 * follows a reference; `field` is the field's schema (for a Choice's names).
 */
export function renderValue(value, field, open) {
  const kind = kindOf(value);
  const v = kind ? value[kind] : null;
  const link = (eid) => h("button", { type: "button", class: "link", onclick: () => open(eid), title: `open ${idText(eid)}` },
    idText(eid));
  switch (kind) {
    case null:
      return h("span", { class: "muted" }, "(none)");
    case "String":
      return v === "" ? h("span", { class: "muted" }, "(empty)") : h("span", { class: "string" }, v);
    case "Int":
    case "Float":
      return h("span", { class: "number" }, String(v));
    case "Bool":
      return h("span", { class: `bool ${v}` }, String(v));
    case "Choice": {
      const name = choiceName(v, field);
      return h("span", { title: `choice ${v}` }, name === null ? `#${v}` : name);
    }
    case "EntityReference":
      return v ? link(v) : h("span", { class: "muted" }, "null");
    case "EntityList": {
      if (v.length === 0) return h("span", { class: "muted" }, "[]");
      const more = v.length - LIST_SHOWN;
      return h("span", { class: "list" }, v.slice(0, LIST_SHOWN).map(link),
        more > 0 ? h("span", { class: "muted" }, ` and ${more} more`) : null);
    }
    case "Timestamp":
      return h("time", { title: timeFull(v) }, timeText(v));
    case "Blob":
      return h("span", { class: "blob" }, `${v.length} bytes`,
        v.length ? h("code", { class: "muted" }, ` ${hexPreview(v)}`) : null);
    default:
      return h("code", {}, JSON.stringify(value));
  }
}

export function hexPreview(bytes, n = 12) {
  const hex = Array.from(bytes.slice(0, n), (b) => b.toString(16).padStart(2, "0")).join(" ");
  return bytes.length > n ? `${hex} …` : hex;
}

/** A default value as short text, for the schema table. */
export function valueSummary(value, field) {
  const kind = kindOf(value);
  const v = kind ? value[kind] : null;
  switch (kind) {
    case "String": return JSON.stringify(v);
    case "Choice": return choiceName(v, field) ?? `#${v}`;
    case "EntityReference": return idText(v);
    case "EntityList": return `[${v.map(idText).join(", ")}]`;
    case "Timestamp": return timeText(v);
    case "Blob": return `${v.length} bytes`;
    default: return String(v);
  }
}
