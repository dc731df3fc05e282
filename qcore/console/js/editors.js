// An input fit for each value type (SPEC 10): numbers, text, a checkbox, choices
// by name, references by id, a UTC date-time, a file for a blob. `read()` gives
// the tagged value to write, or throws an Error saying what is wrong with the input
// (nothing is sent then).

import { h } from "./dom.js";
import { fromDatetimeLocal, idText, parseId, toDatetimeLocal } from "./values.js";

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
// Base64-free JSON spends up to 4 characters per byte ("255,"): keep a blob's frame well
// under the node's default frame limit (16 MiB).
export const MAX_BLOB_BYTES = 2 * 1024 * 1024;

/**
 * The editor of a field: {el, focus(), read(): Promise<value>}. `kind` is the
 * field's type (the variant of its default value), `value` its current value.
 */
export function createEditor(kind, value, field, label) {
  const current = value ? value[kind] : null;
  const make = EDITORS[kind];
  if (!make) throw new Error(`the console cannot edit ${kind} values`);
  return make(current, field, label);
}

function input(attrs) {
  return h("input", { class: "editor-input", ...attrs });
}

const EDITORS = {
  Int(current, field, label) {
    const el = input({ type: "number", step: "1", value: String(current ?? 0), "aria-label": label, inputmode: "numeric" });
    return {
      el, focus: () => el.focus(),
      async read() {
        const text = el.value.trim();
        // An input of type number reads as "" when what was typed is not a number at all.
        if (!/^-?\d+$/.test(text)) throw new Error("Int: enter a whole number, such as 42");
        const big = BigInt(text);
        if (big < I64_MIN || big > I64_MAX) throw new Error("Int: out of the 64-bit range");
        const n = Number(text);
        if (!Number.isSafeInteger(n)) {
          throw new Error("Int: beyond ±9007199254740991 the browser cannot send it exactly; use qcore-cli");
        }
        return { Int: n };
      },
    };
  },

  Float(current, field, label) {
    const el = input({ type: "number", step: "any", value: String(current ?? 0), "aria-label": label, inputmode: "decimal" });
    return {
      el, focus: () => el.focus(),
      async read() {
        const text = el.value.trim();
        const n = Number(text);
        if (text === "" || !Number.isFinite(n)) throw new Error("Float: enter a finite number, such as 21.5");
        return { Float: n };
      },
    };
  },

  String(current, field, label) {
    const text = current ?? "";
    const area = (value) => h("textarea", { class: "editor-input", rows: 4, "aria-label": label, value });
    let el = /[\r\n]/.test(text)
      ? area(text)
      : input({ type: "text", value: text, "aria-label": label, spellcheck: "false", title: "Shift+Enter: a new line" });
    // A text area reads "\r\n" and "\r" as "\n" (a text field drops line breaks): left as it
    // was shown, the editor saves the value exactly, as a Timestamp keeps its nanoseconds.
    const shown = el.value;
    if (el.tagName === "INPUT") {
      // A text field holds one line: Shift+Enter turns it into a text area, with a line break at the caret.
      el.addEventListener("keydown", (e) => {
        if (e.key !== "Enter" || !e.shiftKey) return;
        e.preventDefault();
        const at = el.selectionStart ?? el.value.length;
        const next = area(`${el.value.slice(0, at)}\n${el.value.slice(el.selectionEnd ?? at)}`);
        el.replaceWith(next);
        el = next;
        el.focus();
        el.setSelectionRange(at + 1, at + 1);
      });
    }
    return { get el() { return el; }, focus: () => el.focus(),
      async read() { return { String: el.value === shown ? text : el.value }; } };
  },

  Bool(current, field, label) {
    const box = input({ type: "checkbox", checked: !!current, "aria-label": label, class: "editor-check" });
    const el = h("label", { class: "check" }, box, " true");
    return { el, focus: () => box.focus(), async read() { return { Bool: box.checked }; } };
  },

  Choice(current, field, label) {
    const choices = (field && field.choices) || [];
    if (choices.length === 0) {
      const el = input({ type: "number", min: "0", step: "1", value: String(current ?? 0), "aria-label": label });
      return {
        el, focus: () => el.focus(),
        async read() {
          if (!/^\d+$/.test(el.value.trim())) throw new Error("Choice: enter the index of a choice");
          return { Choice: Number(el.value) };
        },
      };
    }
    const el = h("select", { class: "editor-input", "aria-label": label },
      choices.map((name, i) => h("option", { value: String(i), selected: i === current }, name)));
    // picked(): the name on screen; the index read() gives is the one in the choices shown,
    // which another user may have reordered since (entity.js maps the name afresh on save).
    return { el, focus: () => el.focus(), picked: () => choices[Number(el.value)],
      async read() { return { Choice: Number(el.value) }; } };
  },

  EntityReference(current, field, label) {
    const el = input({ type: "text", value: current ? idText(current) : "", placeholder: "Type$id, or empty for null",
      "aria-label": label, spellcheck: "false", autocomplete: "off" });
    return {
      el, focus: () => el.focus(),
      async read() {
        const text = el.value.trim();
        if (text === "" || text === "null") return { EntityReference: null };
        const eid = parseId(text);
        if (!eid) throw new Error(`EntityReference: "${text}" is not an entity id such as User$3`);
        return { EntityReference: eid };
      },
    };
  },

  EntityList(current, field, label) {
    const el = h("textarea", { class: "editor-input", rows: 3, placeholder: "User$3, User$4", "aria-label": label,
      spellcheck: "false", value: (current || []).map(idText).join(", ") });
    return {
      el, focus: () => el.focus(),
      async read() {
        const parts = el.value.split(/[\s,]+/).filter((p) => p !== "");
        const ids = parts.map((p) => {
          const eid = parseId(p);
          if (!eid) throw new Error(`EntityList: "${p}" is not an entity id such as User$3`);
          return eid;
        });
        return { EntityList: ids };
      },
    };
  },

  Timestamp(current, field, label) {
    const box = input({ type: "datetime-local", step: "0.001", value: toDatetimeLocal(current), "aria-label": label });
    const el = h("span", { class: "with-unit" }, box, h("span", { class: "muted" }, " UTC"));
    return {
      el, focus: () => box.focus(),
      async read() {
        const ts = fromDatetimeLocal(box.value);
        if (!ts) throw new Error("Timestamp: enter a date and time (UTC)");
        // The input holds milliseconds: one left at the current value's millisecond saves
        // that value exactly, nanoseconds below the millisecond included.
        if (current && ts.secs_since_epoch === current.secs_since_epoch
            && ts.nanos_since_epoch === Math.floor(current.nanos_since_epoch / 1e6) * 1e6) {
          return { Timestamp: current };
        }
        return { Timestamp: ts };
      },
    };
  },

  Blob(current, field, label) {
    const file = input({ type: "file", "aria-label": label });
    const el = h("span", { class: "with-unit" }, file,
      h("span", { class: "muted" }, ` replaces the ${(current || []).length} bytes`));
    return {
      el, focus: () => file.focus(),
      async read() {
        const f = file.files && file.files[0];
        if (!f) throw new Error("Blob: choose a file");
        if (f.size > MAX_BLOB_BYTES) {
          throw new Error(`Blob: ${f.size} bytes is more than the console sends (${MAX_BLOB_BYTES}); use qcore-cli`);
        }
        return { Blob: Array.from(new Uint8Array(await f.arrayBuffer())) };
      },
    };
  },
};

/** A blob's bytes as a file download (a link to an object URL, revoked once clicked). */
export function downloadBlob(bytes, filename) {
  const url = URL.createObjectURL(new Blob([new Uint8Array(bytes)], { type: "application/octet-stream" }));
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
