// The entity view: every field with its type, value, write time and writer; the
// schema of its type; an editor per field; create a child, delete the entity;
// and the open entity followed live through notifications (one registration
// per field, unregistered when the user moves on).

import { errorText, fill, h, isPassing, NO_POLL, pollAfter, showError } from "./dom.js";
import { createEditor, downloadBlob } from "./editors.js";
import { idText, kindOf, renderValue, sameId, timeFull, timeText, valueSummary } from "./values.js";
import { readBatch, readRequest, writeRequest } from "./queries.js";

// A folder with more children than this shows Children as a count (the tree pages
// them) and is not watched: each notification of it would carry the whole list twice.
export const LARGE_CHILDREN = 1000;
// An open entity whose deletion no followed parent would tell (a root, a child of a
// large folder) is checked with EntityExists this often instead.
const EXISTS_CHECK_MS = 3000;

const NOT_EDITABLE = {
  Children: "maintained by the store: create or delete entities, or write a child's Parent to move it",
};

function byRank([an, a], [bn, b]) {
  return (a.rank ?? 0) - (b.rank ?? 0) || (an < bn ? -1 : an > bn ? 1 : 0);
}

export class EntityView {
  constructor(root, conn, { perms, childReader, actions, onOpen, onChildrenChanged, onRenamed, onGone }) {
    this.root = root;
    this.conn = conn;
    this.perms = perms;
    this.childReader = childReader;
    this.actions = actions;
    this.onOpen = onOpen;
    this.onChildrenChanged = onChildrenChanged;
    this.onRenamed = onRenamed;
    this.onGone = onGone;
    this.eid = null;
    this.gen = 0; // bumped by every open: answers for an entity the user left are dropped
    this.tokens = [];
    this.fields = new Map();
    this.existsTimer = NO_POLL;
    this.failed = false; // the open entity could not be read for a passing cause (retryFailed)
    // Editors open when the entity is read again (a reconnect, a login, Reload), by field name:
    // the user's input, not yet saved, comes back in the new rows instead of being dropped.
    this.kept = new Map();
    this.placeholder();
  }

  placeholder() {
    fill(this.root, h("div", { class: "panel-head" }, h("h2", {}, "Entity")),
      h("p", { class: "muted" }, "Choose an entity in the tree, or find one by type."));
  }

  // ------------------------------------------------------------------ opening

  async open(eid) {
    const gen = ++this.gen;
    this.existsTimer.cancel();
    this.failed = false;
    await this._unwatchAll();
    if (gen !== this.gen) return;
    if (!sameId(eid, this.eid)) {
      this.kept = new Map(); // another entity: an editor open in the one left goes with it, never into a field of this one
    } else {
      for (const f of this.fields.values()) {
        if (f.editor) this.kept.set(f.name, { kind: f.kind, editor: f.editor.editor, focused: f.editor.form.contains(document.activeElement) });
      }
    }
    this.eid = eid;
    this.fields = new Map();
    this.deleted = false;
    this.error = h("p", { class: "error", hidden: true });
    const loading = h("p", { class: "muted" }, "loading…");
    const head = h("div", { class: "panel-head" }, h("h2", {}, idText(eid)));
    fill(this.root, head, loading, this.error);
    try {
      await this._load(eid, gen);
    } catch (err) {
      if (gen !== this.gen) return;
      loading.remove();
      showError(this.error, err);
      if (this.kept.size) {
        this.error.append(`. Your input for ${[...this.kept.keys()].join(", ")} is not saved; it is kept, and comes back `
          + "once the entity is read again.");
      }
      this.failed = isPassing(err);
      // A failed load (no leader, the node away) can be tried again once the cause is gone.
      head.append(h("div", { class: "actions" }, h("button", { type: "button", onclick: () => this.reload() }, "Reload")));
    }
  }

  reload() {
    if (this.eid) return this.open(this.eid);
    return Promise.resolve();
  }

  /** Open the entity again if it could not be read for a passing cause (no leader) and the cluster is back. */
  retryFailed() {
    if (this.failed) this.reload();
  }

  async close() {
    this.gen++;
    this.existsTimer.cancel();
    await this._unwatchAll();
    this.eid = null;
    this.placeholder();
  }

  async _load(eid, gen) {
    const exists = await this.conn.perform({ EntityExists: { entity_id: eid } });
    if (gen !== this.gen) return;
    if (!exists) throw new Error(`${idText(eid)} does not exist`);
    const schema = await this.conn.perform({ GetCompleteSchema: { entity_type: eid.typ } });
    if (!schema) throw new Error(`the type ${eid.typ} has no schema`);
    const chain = await this._inheritance(schema);
    let childCount = null;
    if (schema.fields.Children) childCount = await this._childCount(eid);
    if (gen !== this.gen) return;
    const entries = Object.entries(schema.fields).sort(byRank);
    const largeFolder = childCount !== null && childCount > LARGE_CHILDREN;
    const names = entries.map(([n]) => n).filter((n) => !(largeFolder && n === "Children"));
    const reads = await this._readFields(eid, names);
    if (gen !== this.gen) return;
    for (const [name, fs] of entries) {
      const f = { name, schema: fs, kind: kindOf(fs.default_value), read: null, error: null, tr: null, editor: null };
      const i = names.indexOf(name);
      if (i < 0) f.error = new Error(`${childCount} children: too many to list here, expand it in the tree`);
      else if (reads[i].error) f.error = reads[i].error;
      else f.read = reads[i].read;
      this.fields.set(name, f);
    }
    this.schema = schema;
    this.chain = chain;
    this.childCount = childCount;
    this._render();
    this._restoreEdits();
    await this._watch(eid, gen, names.filter((n) => this.fields.get(n).read));
  }

  /** The editors kept from before the entity was read again, open again with the user's input. */
  _restoreEdits() {
    const lost = [];
    for (const [name, k] of this.kept) {
      const f = this.fields.get(name);
      if (k.saved) {
        // Its save went through after this read was sent: read it again, after the write.
        if (f) this._readBack(f, this.gen, null);
        continue;
      }
      if (!f || f.kind !== k.kind || !f.read) {
        lost.push(name);
        continue;
      }
      this._edit(f, k.editor, k.focused);
      f.editor.note.textContent = "your input is kept, not saved yet: the entity was read again meanwhile; its value is now ";
      f.editor.note.append(renderValue(f.read.value, f.schema, this.onOpen));
      f.editor.note.hidden = false;
    }
    this.kept = new Map();
    if (lost.length) {
      showError(this.error, new Error(`your input for ${lost.join(", ")} was not saved, and is dropped: `
        + "the field could not be read again, or its type changed"));
    }
  }

  async _childCount(eid) {
    try {
      return await this.childReader.count(eid);
    } catch {
      return null;
    }
  }

  /**
   * The type and its ancestors, "Sensor", "Device", "Object". An ancestor's schema
   * the user may not read (a permission on Sensor alone) ends the chain there: the
   * entity itself is still shown.
   */
  async _inheritance(schema) {
    const chain = [schema.entity_type];
    let parent = schema.inherit;
    while (parent && !chain.includes(parent) && chain.length < 32) {
      chain.push(parent);
      let s;
      try {
        s = await this.conn.perform({ GetSchema: { entity_type: parent } });
      } catch (err) {
        if (err.kind !== "permission_denied") throw err;
        chain.push("…");
        break;
      }
      parent = s ? s.inherit : null;
    }
    return chain;
  }

  /** Every field in one atomic batch; if it is refused (a field we may not read), one read each. */
  async _readFields(eid, names) {
    try {
      return (await readBatch(this.conn, names.map((n) => readRequest(eid, n)))).map((read) => ({ read }));
    } catch (err) {
      if (err.kind !== "rejected" && err.kind !== "permission_denied") throw err;
    }
    return Promise.all(names.map(async (n) => {
      try {
        return { read: (await readBatch(this.conn, [readRequest(eid, n)]))[0] };
      } catch (error) {
        return { error };
      }
    }));
  }

  // ------------------------------------------------------------------ live updates

  async _watch(eid, gen, names) {
    this.live = h("span", { class: "muted" }, "registering for changes…");
    this.liveLine.replaceChildren(this.live);
    const failures = [];
    await Promise.all(names.map(async (name) => {
      try {
        const token = await this.conn.watch(
          { EntityId: { entity_id: eid, field_type: name, trigger_on_change: false, context: [] } },
          (n) => this._onNotification(n));
        if (gen !== this.gen) this.conn.unwatch(token).catch(() => {}); // the user moved on meanwhile
        else this.tokens.push(token);
      } catch (err) {
        failures.push(`${name}: ${errorText(err)}`);
      }
    }));
    if (gen !== this.gen) return;
    const parent = this.fields.get("Parent");
    const parentId = parent && parent.read && parent.read.value && parent.read.value.EntityReference;
    const parentWatched = parentId ? await this._watchParent(parentId, gen) : false;
    if (gen !== this.gen) return;
    if (!parentWatched) this._checkExists(gen);
    if (failures.length) {
      this.live.className = "error";
      this.live.setAttribute("role", "alert");
      this.live.textContent = `not following every change: ${failures.join("; ")}`;
    } else {
      this.live.textContent = `live: following ${names.length} fields`;
    }
  }

  /**
   * The parent's Children, to notice the entity being deleted (when the parent is small
   * enough). Resolves whether it is followed.
   */
  async _watchParent(parentId, gen) {
    const count = await this._childCount(parentId);
    if (count === null || count > LARGE_CHILDREN || gen !== this.gen) return false;
    try {
      const token = await this.conn.watch(
        { EntityId: { entity_id: parentId, field_type: "Children", trigger_on_change: true, context: [] } },
        (n) => this._onParentChildren(n, gen));
      if (gen !== this.gen) this.conn.unwatch(token).catch(() => {});
      else this.tokens.push(token);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * No followed parent would tell of a deletion (a root, a child of a large folder): an
   * EntityExists every EXISTS_CHECK_MS does (while the page is shown), until another entity is opened.
   */
  _checkExists(gen) {
    this.existsTimer.cancel();
    this.existsTimer = pollAfter(EXISTS_CHECK_MS, async () => {
      if (gen !== this.gen || this.deleted) return;
      let exists = true;
      try {
        exists = await this.conn.perform({ EntityExists: { entity_id: this.eid } });
      } catch {
        // Not known now (the node away, no leader): asked again at the next check.
      }
      if (gen !== this.gen || this.deleted) return;
      if (exists) this._checkExists(gen);
      else await this._gone(this._parentId());
    });
  }

  /**
   * The node sends the open entity's changes no more (the connection was lost, or the node
   * refused it for want of a login: its user was deleted), so the page stops saying it
   * follows them. The entity is opened, and followed, again once the connection is ready.
   */
  notFollowing(err) {
    if (!this.eid || !this.live || this.deleted) return;
    this.live.className = "error";
    this.live.setAttribute("role", "alert");
    this.live.textContent = `not following changes: ${errorText(err)}`;
  }

  async _unwatchAll() {
    const tokens = this.tokens;
    this.tokens = [];
    const failed = [];
    await Promise.all(tokens.map((t) => this.conn.unwatch(t).catch((err) => failed.push(errorText(err)))));
    if (failed.length && this.error) showError(this.error, new Error(`could not unregister: ${failed.join("; ")}`));
  }

  _onNotification(n) {
    if (!sameId(n.entity_id, this.eid)) return;
    const f = this.fields.get(n.field_type);
    if (!f) return;
    f.read = { value: n.current_value, write_time: n.write_time, writer_id: n.writer_id };
    f.error = null;
    if (f.editor) {
      f.editor.note.textContent = "changed meanwhile by another write: now ";
      f.editor.note.append(renderValue(n.current_value, f.schema, this.onOpen));
      f.editor.note.hidden = false;
    } else {
      this._renderRow(f);
    }
    f.tr.classList.remove("changed");
    void f.tr.offsetWidth; // restart the highlight
    f.tr.classList.add("changed");
    if (n.field_type === "Name") {
      this.title.textContent = n.current_value.String || "(no name)";
      this.onRenamed(this.eid, n.current_value.String);
    } else if (n.field_type === "Children") {
      this.onChildrenChanged(this.eid);
    } else if (n.field_type === "Parent") {
      for (const p of [n.previous_value, n.current_value]) if (p && p.EntityReference) this.onChildrenChanged(p.EntityReference);
    }
  }

  async _onParentChildren(n, gen) {
    if (gen !== this.gen || this.deleted) return;
    const kids = (n.current_value && n.current_value.EntityList) || [];
    if (kids.some((k) => sameId(k, this.eid))) return;
    // Gone from its parent: deleted, or moved (then its own Parent changed too).
    const exists = await this.conn.perform({ EntityExists: { entity_id: this.eid } }).catch(() => true);
    if (gen !== this.gen) return;
    if (exists) this._checkExists(gen); // moved away: that parent will not tell of a deletion
    else await this._gone(n.entity_id);
  }

  /** The parent the open entity's (followed) Parent field names, or null. */
  _parentId() {
    const parent = this.fields.get("Parent");
    return parent && parent.read && parent.read.value ? parent.read.value.EntityReference : null;
  }

  /** The open entity was deleted by someone else: say so, and stop following it. */
  async _gone(parentId) {
    this.deleted = true;
    await this._unwatchAll();
    this.live.className = "error";
    this.live.setAttribute("role", "alert");
    this.live.textContent = `${idText(this.eid)} was deleted`;
    for (const b of this.root.querySelectorAll("button.action")) b.disabled = true;
    this.onGone(this.eid, parentId, false);
  }

  // ------------------------------------------------------------------ rendering

  _render() {
    const eid = this.eid;
    const name = this.fields.get("Name");
    const nameText = name && name.read && name.read.value ? name.read.value.String : "";
    const parent = this.fields.get("Parent");
    const parentId = parent && parent.read && parent.read.value ? parent.read.value.EntityReference : null;
    this.title = h("span", { class: "entity-name" }, nameText || "(no name)");
    this.liveLine = h("p", { class: "live", "aria-live": "polite" });
    const canDelete = this.perms.allowed("delete", eid.typ);
    this.tbody = h("tbody");
    for (const f of this.fields.values()) {
      f.tr = h("tr", { dataset: { field: f.name, kind: f.kind || "" } });
      this._renderRow(f);
      this.tbody.append(f.tr);
    }
    fill(this.root,
      h("div", { class: "panel-head" },
        h("h2", {}, this.title, " ", h("code", { class: "entity-id" }, idText(eid))),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "action", onclick: () => this._createChild(),
            disabled: !this.schema.fields.Children }, "New child"),
          this.deleteButton = h("button", { type: "button", class: "action danger", onclick: () => this._delete(nameText),
            disabled: !canDelete, title: canDelete ? null : this.perms.why("delete", eid.typ) }, "Delete"),
          h("button", { type: "button", onclick: () => this.reload() }, "Reload"))),
      h("p", { class: "muted" }, `type ${this.chain.join(" ← ")}`,
        parentId ? [" · in ", h("button", { type: "button", class: "link", onclick: () => this.onOpen(parentId) },
          idText(parentId))] : " · a root"),
      this.liveLine,
      this.error,
      h("div", { class: "scroll-x" },
        h("table", { class: "fields" },
          h("thead", {}, h("tr", {}, ["Field", "Type", "Value", "Written", "Writer", ""].map((c) => h("th", { scope: "col" }, c)))),
          this.tbody)),
      this._schemaSection());
  }

  _renderRow(f) {
    const r = f.read;
    const cells = [
      h("th", { scope: "row" }, f.name),
      h("td", { class: "kind", "data-label": "Type" }, f.kind),
    ];
    if (f.editor) {
      cells.push(h("td", { class: "value", colspan: 4, "data-label": "Value" }, f.editor.form));
    } else {
      cells.push(
        h("td", { class: "value", "data-label": "Value" },
          r ? renderValue(r.value, f.schema, this.onOpen) : h("span", { class: "error" }, errorText(f.error))),
        h("td", { class: "time", "data-label": "Written" },
          r && r.write_time ? h("time", { title: timeFull(r.write_time) }, timeText(r.write_time)) : "—"),
        h("td", { class: "writer", "data-label": "Writer" },
          r && r.writer_id ? h("button", { type: "button", class: "link", onclick: () => this.onOpen(r.writer_id) },
            idText(r.writer_id)) : h("span", { class: "muted" }, "—")),
        h("td", { class: "row-actions" }, this._rowActions(f)));
    }
    fill(f.tr, cells);
  }

  _rowActions(f) {
    const out = [];
    if (f.kind === "Blob" && f.read && f.read.value) {
      out.push(h("button", { type: "button", onclick: () => downloadBlob(f.read.value.Blob,
        `${idText(this.eid).replace("$", "-")}-${f.name}.bin`) }, "Download"));
    }
    if (NOT_EDITABLE[f.name]) {
      out.push(h("span", { class: "muted small", title: NOT_EDITABLE[f.name] }, "read-only"));
    } else if (f.read && !this.deleted) {
      const allowed = this.perms.allowed("write", this.eid.typ, f.name);
      out.push(h("button", { type: "button", class: "action edit", disabled: !allowed,
        title: allowed ? `edit ${f.name}` : this.perms.why("write", this.eid.typ, f.name),
        "aria-label": `edit ${f.name}`, onclick: () => this._edit(f) }, f.name === "Parent" ? "Move" : "Edit"));
    }
    return out;
  }

  _schemaSection() {
    const s = this.schema;
    const rows = Object.entries(s.fields).sort(byRank).map(([name, fs]) => h("tr", {},
      h("th", { scope: "row" }, name),
      h("td", {}, kindOf(fs.default_value)),
      h("td", {}, valueSummary(fs.default_value, fs)),
      h("td", { class: "num" }, String(fs.rank ?? "")),
      h("td", {}, fs.choices ? fs.choices.map((c, i) => `${i}: ${c}`).join(", ") : "—"),
      h("td", {}, fs.read_permission ? idText(fs.read_permission) : "—"),
      h("td", {}, fs.write_permission ? idText(fs.write_permission) : "—")));
    return h("details", { class: "schema" },
      h("summary", {}, `Schema of ${s.entity_type}`, s.inherit ? ` (inherits ${s.inherit})` : ""),
      h("div", { class: "scroll-x" }, h("table", {},
        h("thead", {}, h("tr", {}, ["Field", "Type", "Default", "Rank", "Choices", "Read permission", "Write permission"]
          .map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows))));
  }

  // ------------------------------------------------------------------ editing

  /** Open the field's editor: a new one, or `kept` (one from before the entity was read again). */
  _edit(f, kept = null, focus = true) {
    let editor = kept;
    try {
      editor ??= createEditor(f.kind, f.read.value, f.schema, `new value of ${f.name}`);
    } catch (err) {
      f.error = err;
      showError(this.error, err);
      return;
    }
    const error = h("p", { class: "error", hidden: true });
    const note = h("p", { class: "note", hidden: true });
    const save = h("button", { type: "submit", class: "primary" }, "Save");
    // novalidate: the editor's own checks say what is wrong, in the row, instead of a transient bubble.
    const form = h("form", { class: "edit", novalidate: true, onsubmit: (e) => { e.preventDefault(); this._save(f, save); },
      onkeydown: (e) => {
        if (e.key === "Escape") { e.preventDefault(); this._endEdit(f); }
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this._save(f, save); }
      } },
    editor.el, " ", save, " ", h("button", { type: "button", onclick: () => this._endEdit(f) }, "Cancel"), error, note);
    f.editor = { ...editor, editor, form, error, note };
    this._renderRow(f);
    if (focus) editor.focus();
  }

  _endEdit(f) {
    f.editor = null;
    this._renderRow(f);
    const edit = f.tr.querySelector("button.edit");
    if (edit) edit.focus();
  }

  async _save(f, button) {
    const ed = f.editor;
    let value;
    try {
      value = await ed.read();
    } catch (err) {
      showError(ed.error, err); // what was typed is not a value of the field's type: nothing is sent
      return;
    }
    const eid = this.eid;
    const gen = this.gen;
    button.disabled = true;
    showError(ed.error, null);
    try {
      if (ed.picked) {
        value = await this._choiceNow(f, ed, gen);
        // Nothing sent when it is null: the entity was read again meanwhile (the input is kept), the
        // editor was closed, or the name is gone (refused; the editor lists the choices of now).
        if (!value) return;
      }
      await this.conn.perform({ UpdateEntity: { request: [writeRequest(eid, f.name, value)] } });
    } catch (err) {
      if (gen !== this.gen) return;
      button.disabled = false;
      if (err.kind === "permission_denied") this.perms.deny("write", eid.typ, f.name, err.message);
      showError(ed.error, err);
      return;
    }
    if (gen !== this.gen) {
      if (sameId(eid, this.eid)) this._savedMeanwhile(f.name, ed.editor);
      return;
    }
    if (f.editor === ed) await this._readBack(f, gen, ed);
  }

  /**
   * The node stores a Choice as an index, and the editor lists the choices read when the
   * entity was opened: the picked `name` is written at its index in the type's choices as
   * they are now (another user may have reordered them). A name no longer among them is
   * refused: the editor is opened again with the current choices and says why (null).
   */
  async _choiceNow(f, ed, gen) {
    const eid = this.eid;
    const name = ed.picked();
    const schema = await this.conn.perform({ GetCompleteSchema: { entity_type: eid.typ } });
    const fs = schema && schema.fields[f.name];
    if (!fs || kindOf(fs.default_value) !== "Choice" || !fs.choices) {
      throw new Error(`${f.name} is no longer a Choice field of ${eid.typ}: nothing was saved; Reload the entity`);
    }
    if (gen !== this.gen || f.editor !== ed) return null;
    f.schema = fs; // the row shows the stored index by these names from now on
    this.schema.fields[f.name] = fs;
    const index = fs.choices.indexOf(name);
    if (index >= 0) return { Choice: index };
    this._edit(f);
    showError(f.editor.error, new Error(`"${name}" is no longer one of the choices of ${f.name} (the schema was `
      + `changed meanwhile; they are now ${fs.choices.join(", ")}): nothing was saved, pick again`));
    return null;
  }

  /**
   * The write is applied; read it back (the notification says so too, unless registering
   * failed), and end the editor `ed` if it is still open.
   */
  async _readBack(f, gen, ed) {
    try {
      const [read] = await readBatch(this.conn, [readRequest(this.eid, f.name)]);
      if (gen === this.gen) f.read = read;
    } catch (err) {
      if (gen === this.gen) showError(this.error, err);
    }
    if (gen !== this.gen) return;
    if (ed && f.editor === ed) this._endEdit(f);
    else if (!f.editor && f.tr) this._renderRow(f);
  }

  /**
   * A save of `editor` went through while the entity was being read again (a reconnect, Reload):
   * that editor, kept for the new rows, is not "not saved yet"; it ends as a save ends.
   */
  _savedMeanwhile(name, editor) {
    const k = this.kept.get(name);
    if (k && k.editor === editor) {
      k.saved = true; // not back in its row yet: _restoreEdits reads the field instead
      return;
    }
    const f = this.fields.get(name);
    if (f && f.editor && f.editor.editor === editor) this._readBack(f, this.gen, f.editor);
  }

  // ------------------------------------------------------------------ create and delete

  async _createChild() {
    let created;
    try {
      created = await this.actions.createChild(this.eid);
    } catch (err) {
      showError(this.error, err); // the types could not be read
      return;
    }
    if (created) {
      this.onChildrenChanged(this.eid, { expand: true });
      this.onOpen(created);
    }
  }

  async _delete(name) {
    const eid = this.eid;
    const deleted = await this.actions.confirmDelete(eid, name, this.childCount);
    if (!deleted) {
      // Refused (permission denied): from now on the button says why instead of asking again.
      const why = this.perms.why("delete", eid.typ);
      if (why && sameId(eid, this.eid)) {
        this.deleteButton.disabled = true;
        this.deleteButton.title = why;
      }
      return;
    }
    const parent = this.fields.get("Parent");
    const parentId = parent && parent.read && parent.read.value ? parent.read.value.EntityReference : null;
    this.deleted = true;
    await this.close();
    this.onGone(eid, parentId, true);
  }
}
