// The dialogs of the entity view: create a child (type and name), delete an
// entity (with a confirmation). Errors stay in the dialog, where the user is.

import { h, showError } from "./dom.js";
import { idText } from "./values.js";

/** A modal <dialog>; resolves with what `onSubmit` returns, or null if cancelled (Escape, Cancel). */
function modal(title, body, submitLabel, onSubmit, { danger = false, focusCancel = false } = {}) {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", hidden: true });
    const submit = h("button", { type: "submit", class: danger ? "danger" : "primary" }, submitLabel);
    const cancel = h("button", { type: "button", onclick: () => done(null) }, "Cancel");
    const form = h("form", {
      onsubmit: async (e) => {
        e.preventDefault();
        submit.disabled = true;
        showError(error, null);
        try {
          done(await onSubmit());
        } catch (err) {
          showError(error, err);
          submit.disabled = false;
        }
      },
    }, h("h3", {}, title), body, error, h("div", { class: "dialog-buttons" }, cancel, " ", submit));
    const dialog = h("dialog", { class: "modal", "aria-label": title }, form);
    let finished = false;
    function done(result) {
      if (finished) return;
      finished = true;
      dialog.close();
      dialog.remove();
      resolve(result);
    }
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); done(null); });
    document.body.append(dialog);
    dialog.showModal();
    (focusCancel ? cancel : form.querySelector("input, select") || submit).focus();
  });
}

export class EntityActions {
  constructor(conn, perms, entityTypes) {
    this.conn = conn;
    this.perms = perms;
    this.entityTypes = entityTypes; // async () => [type, ...]
  }

  /** Ask for a type and a name; create the entity under `parent`. Resolves its id, or null. */
  async createChild(parent) {
    const types = await this.entityTypes();
    const select = h("select", { id: "new-type", required: true },
      types.map((t) => h("option", { value: t, disabled: !this.perms.allowed("create", t),
        title: this.perms.why("create", t) }, t)));
    const name = h("input", { id: "new-name", type: "text", required: true, autocomplete: "off", spellcheck: "false" });
    const body = h("div", { class: "form-grid" },
      h("label", { for: "new-type" }, "Type"), select, h("label", { for: "new-name" }, "Name"), name);
    return modal(`New child of ${idText(parent)}`, body, "Create", async () => {
      const type = select.value;
      try {
        return await this.conn.perform({ CreateEntity: { entity_type: type, parent_id: parent, name: name.value } });
      } catch (err) {
        if (err.kind === "permission_denied") {
          this.perms.deny("create", type, null, err.message);
          select.selectedOptions[0].disabled = true;
        }
        throw err;
      }
    });
  }

  /** Ask to confirm, then delete `eid` (and, as the store does, everything under it). Resolves true if deleted. */
  async confirmDelete(eid, name, childCount) {
    const under = childCount ? ` and everything under it (${childCount} children, and theirs)` : "";
    // The name on one line, cut with an ellipsis as in the entity's heading (all of it in the
    // tooltip): a long one can neither widen the dialog nor push its buttons off screen.
    const shown = h("span", { class: "entity-name", title: name || null }, name || "(no name)");
    const body = h("p", {}, `Delete ${idText(eid)} “`, shown, `”${under}? This cannot be undone.`);
    const deleted = await modal(`Delete ${idText(eid)}?`, body, "Delete", async () => {
      try {
        await this.conn.perform({ DeleteEntity: { entity_id: eid } });
        return true;
      } catch (err) {
        if (err.kind === "permission_denied") this.perms.deny("delete", eid.typ, null, err.message);
        throw err;
      }
    }, { danger: true, focusCancel: true });
    return deleted === true;
  }
}
