// Find entities by type (FindEntities, a page at a time), or open one by its id.

import { errorText, fill, h, showError } from "./dom.js";
import { idText, parseId } from "./values.js";
import { readFieldOfMany } from "./queries.js";

const PAGE = 50;

export class Search {
  constructor(root, conn, { onOpen }) {
    this.conn = conn;
    this.onOpen = onOpen;
    this.cursor = null;
    this.type = null;
    this.shown = 0;
    this.typeSelect = h("select", { id: "search-type", "aria-label": "entity type" });
    this.idInput = h("input", { id: "open-id", type: "text", placeholder: "Type$id", "aria-label": "entity id",
      spellcheck: "false", autocomplete: "off" });
    this.error = h("p", { class: "error", hidden: true });
    this.summary = h("p", { class: "muted", "aria-live": "polite" });
    this.results = h("ul", { class: "results", "aria-label": "search results" });
    this.more = h("button", { type: "button", hidden: true, onclick: () => this._page() }, "more");
    fill(root,
      h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); this.find(this.typeSelect.value); } },
        h("label", { for: "search-type" }, "Find"), this.typeSelect, h("button", { type: "submit" }, "Find")),
      h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); this._openId(); } },
        h("label", { for: "open-id" }, "Open"), this.idInput, h("button", { type: "submit" }, "Open")),
      this.error, this.summary, this.results, this.more);
  }

  setTypes(types) {
    const was = this.typeSelect.value;
    fill(this.typeSelect, types.map((t) => h("option", { value: t, selected: t === was }, t)));
  }

  _openId() {
    const eid = parseId(this.idInput.value);
    showError(this.error, eid ? null : new Error(`"${this.idInput.value}" is not an entity id such as Sensor$12`));
    if (eid) this.onOpen(eid);
  }

  async find(type) {
    this.type = type;
    this.cursor = null;
    this.shown = 0;
    this.results.replaceChildren();
    await this._page();
  }

  async _page() {
    showError(this.error, null);
    this.more.hidden = true;
    try {
      const r = await this.conn.perform({
        FindEntities: { entity_type: this.type, page_opts: { limit: PAGE, cursor: this.cursor } },
      });
      const names = await readFieldOfMany(this.conn, r.items, "Name");
      r.items.forEach((eid, i) => {
        const name = names[i].value ? names[i].value.String : `(${errorText(names[i].error)})`;
        this.results.append(h("li", {}, h("button", { type: "button", class: "link", onclick: () => this.onOpen(eid) },
          name || "(no name)"), " ", h("span", { class: "tree-id" }, idText(eid))));
      });
      this.shown += r.items.length;
      this.cursor = r.next_cursor;
      this.more.hidden = !this.cursor;
      this.summary.textContent = `${this.type}: ${this.shown} of ${r.total} shown`;
    } catch (err) {
      showError(this.error, err);
    }
  }
}
