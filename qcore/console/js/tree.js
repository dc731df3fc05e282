// The entity tree: roots, then children loaded when a node is expanded, a page
// at a time (GetChildren where the node serves it; else the parent's Children
// list, read once and shown a page at a time). Keyboard: the WAI-ARIA tree
// pattern (arrows, Home/End, Enter or Space opens, Right/Left expand/collapse).

import { errorText, h, isPassing } from "./dom.js";
import { idText } from "./values.js";
import { allEntityTypes, readFieldOfMany } from "./queries.js";

export const PAGE = 100;
const SCAN_PAGE = 500;
const SCAN_PAGES_PER_STEP = 20;

class Item {
  constructor(eid, level, parent) {
    this.eid = eid;
    this.key = eid ? idText(eid) : "";
    this.level = level;
    this.parent = parent;
    this.name = "";
    this.count = null; // number of children; null while unknown
    this.loaded = false;
    this.expanded = false;
    this.cursor = null; // where the next page starts (null: the first page, or no more once loaded)
    this.total = null;
    this.all = null; // without GetChildren: the whole Children list
    this.children = [];
    this.li = null;
    this.group = null;
    this.epoch = 0; // bumped when its children are read again: a load still under way is dropped
    this.loading = false;
  }
}

export class EntityTree {
  constructor(root, conn, { onOpen, childReader }) {
    this.conn = conn;
    this.onOpen = onOpen;
    this.childReader = childReader;
    this.rootType = undefined;
    this.items = new Map(); // "Type$id" -> Item
    this.byLi = new WeakMap();
    this.selected = null; // the <li> marked aria-selected
    this.selectedKey = null; // the entity open in the entity view
    this.failed = new Set(); // items whose page failed for a passing cause (retryFailed)
    this.ul = h("ul", { role: "tree", "aria-label": "Entity tree", class: "tree",
      onkeydown: (e) => this._onKey(e), onclick: (e) => this._onClick(e) });
    this.top = new Item(null, 0, null);
    this.top.group = this.ul;
    this.top.expanded = true;
    root.replaceChildren(this.ul);
  }

  // ------------------------------------------------------------------ loading

  async loadRoots() {
    this.top.epoch++;
    this.top.loading = false;
    this._forget(this.top);
    this.top.loaded = false;
    this.top.cursor = null;
    this.ul.replaceChildren();
    await this._loadPage(this.top);
  }

  async _pageOf(item) {
    if (item === this.top) return this._rootsPage(item.cursor);
    const page = await this.childReader.page(item.eid, PAGE, item.cursor);
    if (page) return { ids: page.items, total: page.total, next: page.next_cursor };
    if (item.cursor === null || item.all === null) item.all = await this.childReader.all(item.eid);
    const start = item.cursor === null ? 0 : Number(item.cursor);
    const end = start + PAGE;
    return { ids: item.all.slice(start, end), total: item.all.length, next: end < item.all.length ? String(end) : null };
  }

  /** The roots: the entities of type Root where that type exists, else the entities without a parent. */
  async _rootsPage(cursor) {
    if (this.rootType === undefined) {
      this.rootType = (await allEntityTypes(this.conn)).includes("Root") ? "Root" : null;
    }
    if (this.rootType) {
      const r = await this.conn.perform({ FindEntities: { entity_type: this.rootType, page_opts: { limit: PAGE, cursor } } });
      return { ids: r.items, total: r.total, next: r.next_cursor };
    }
    const ids = [];
    let next = cursor;
    for (let i = 0; i < SCAN_PAGES_PER_STEP && ids.length < PAGE; i++) {
      const r = await this.conn.perform({ FindEntities: { entity_type: "Object", page_opts: { limit: SCAN_PAGE, cursor: next } } });
      const parents = await readFieldOfMany(this.conn, r.items, "Parent");
      r.items.forEach((eid, j) => {
        const p = parents[j].value;
        if (p && p.EntityReference === null) ids.push(eid);
      });
      next = r.next_cursor;
      if (!next) break;
    }
    return { ids, total: null, next };
  }

  async _describe(ids) {
    const names = await readFieldOfMany(this.conn, ids, "Name");
    const counts = await Promise.all(ids.map(async (eid) => {
      try {
        const page = await this.childReader.page(eid, 1);
        return page ? page.total : null;
      } catch {
        return null; // shown as unknown; expanding it says why
      }
    }));
    return ids.map((eid, i) => ({
      eid,
      name: names[i].error ? `(unreadable: ${names[i].error.message})` : (names[i].value && names[i].value.String) || "",
      count: counts[i],
    }));
  }

  async _loadPage(item) {
    if (item.loading) return;
    this.failed.delete(item); // loading it now: not to be retried for an older failure
    const epoch = item.epoch;
    const group = item.group;
    for (const old of group.querySelectorAll(":scope > li.more, :scope > li.note")) old.remove();
    const busy = h("li", { class: "note", role: "none" }, "loading…");
    group.append(busy);
    item.loading = true;
    try {
      const page = await this._pageOf(item);
      const described = await this._describe(page.ids);
      busy.remove();
      if (item.epoch !== epoch) return;
      for (const d of described) {
        const child = new Item(d.eid, item.level + 1, item);
        child.name = d.name;
        child.count = d.count;
        this._render(child);
        item.children.push(child);
        this.items.set(child.key, child);
        group.append(child.li);
      }
      item.loaded = true;
      item.cursor = page.next;
      item.total = page.total;
      if (item !== this.top && page.total !== null && item.count !== page.total) {
        item.count = page.total;
        this._renderCount(item);
      }
      if (page.next) {
        const shown = item.children.length;
        group.append(h("li", { role: "treeitem", class: "more", tabindex: "-1", "aria-level": item.level + 1 },
          `show more (${shown} of ${page.total ?? "?"} shown)`));
      } else if (item.children.length === 0) {
        group.append(h("li", { class: "note", role: "none" }, item === this.top ? "no entities" : "no children"));
      }
      this._keepTabStop();
    } catch (err) {
      busy.remove();
      if (item.epoch === epoch) {
        group.append(h("li", { class: "note error", role: "alert" }, `could not load: ${errorText(err)}`));
        if (isPassing(err)) this.failed.add(item);
      }
    } finally {
      if (item.epoch === epoch) item.loading = false;
    }
  }

  /** Load again the pages that failed for a passing cause (no leader), once the cluster can serve them. */
  retryFailed() {
    const items = [...this.failed];
    this.failed.clear();
    for (const item of items) {
      if (item === this.top || (this.items.get(item.key) === item && item.expanded)) this._loadPage(item);
    }
  }

  // ------------------------------------------------------------------ rendering

  _render(item) {
    item.group = h("ul", { role: "group", hidden: true });
    item.countEl = h("span", { class: "tree-count" });
    item.nameEl = h("span", { class: "tree-name" });
    item.li = h("li", { role: "treeitem", "aria-level": item.level, "aria-selected": "false", tabindex: "-1",
      dataset: { entity: item.key } },
    h("div", { class: "tree-row" }, h("span", { class: "caret", "aria-hidden": "true" }), item.nameEl, " ",
      h("span", { class: "tree-id" }, item.key), item.countEl),
    item.group);
    this.byLi.set(item.li, item);
    if (item.key === this.selectedKey) this._markSelected(item.li); // opened before its folder was shown
    this._renderName(item);
    this._renderCount(item);
  }

  _renderName(item) {
    item.nameEl.textContent = item.name || "(no name)";
    item.nameEl.classList.toggle("muted", !item.name);
  }

  _renderCount(item) {
    item.countEl.textContent = item.count ? String(item.count) : "";
    if (item.count === 0) item.li.removeAttribute("aria-expanded");
    else item.li.setAttribute("aria-expanded", String(item.expanded));
  }

  _forget(item) {
    for (const c of item.children) {
      if (this.items.get(c.key) === c) this.items.delete(c.key);
      this._forget(c);
    }
    item.children = [];
  }

  // ------------------------------------------------------------------ actions

  async expand(item) {
    if (item.count === 0 || item.expanded) return;
    item.expanded = true;
    item.group.hidden = false;
    item.li.setAttribute("aria-expanded", "true");
    if (!item.loaded) await this._loadPage(item);
  }

  collapse(item) {
    item.expanded = false;
    item.group.hidden = true;
    if (item.count !== 0) item.li.setAttribute("aria-expanded", "false");
  }

  open(item) {
    this.selectedKey = item.key;
    this._markSelected(item.li);
    this.onOpen(item.eid);
  }

  /** Mark the entity open elsewhere (a search, a reference) as selected, if it is in the tree. */
  select(eid) {
    this.selectedKey = eid ? idText(eid) : null;
    const item = eid && this.items.get(this.selectedKey);
    this._markSelected(item ? item.li : null);
  }

  _markSelected(li) {
    if (this.selected) this.selected.setAttribute("aria-selected", "false");
    this.selected = li;
    if (li) li.setAttribute("aria-selected", "true");
  }

  /**
   * The children of `eid` changed (created, deleted, moved): read them again where
   * shown; `expand`: show them (the user just created one there).
   */
  async refresh(eid, { expand = false } = {}) {
    const item = this.items.get(idText(eid));
    if (!item) return;
    const wasExpanded = item.expanded || expand;
    item.epoch++;
    item.loading = false;
    this._forget(item);
    item.loaded = false;
    item.cursor = null;
    item.all = null;
    item.group.replaceChildren();
    try {
      const page = await this.childReader.page(item.eid, 1);
      if (page) item.count = page.total;
      else item.count = null;
    } catch {
      item.count = null;
    }
    this._renderCount(item);
    if (item.count === 0) this.collapse(item);
    else if (wasExpanded) {
      item.expanded = false;
      await this.expand(item);
    }
  }

  /** A deleted root (no parent to read again): its item goes, the rest of the tree stays as it is. */
  remove(eid) {
    const item = this.items.get(idText(eid));
    if (!item) return;
    this._forget(item);
    this.items.delete(item.key);
    const siblings = item.parent.children;
    siblings.splice(siblings.indexOf(item), 1);
    item.li.remove();
    if (this.selected === item.li) this.selected = null;
    this._keepTabStop();
  }

  rename(eid, name) {
    const item = this.items.get(idText(eid));
    if (item) {
      item.name = name;
      this._renderName(item);
    }
  }

  // ------------------------------------------------------------------ keyboard and mouse

  _visible() {
    return Array.from(this.ul.querySelectorAll('li[role="treeitem"]')).filter((li) => !li.parentElement.closest("[hidden]"));
  }

  /** One item is always reachable with Tab (roving tabindex), even after the one that was is gone. */
  _keepTabStop() {
    if (this.ul.querySelector('li[tabindex="0"]')) return;
    const first = this.ul.querySelector('li[role="treeitem"]');
    if (first) first.tabIndex = 0;
  }

  _focus(li) {
    if (!li) return;
    for (const other of this.ul.querySelectorAll('li[tabindex="0"]')) other.tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
  }

  async _more(li) {
    const parentLi = li.parentElement.closest('li[role="treeitem"]');
    const item = parentLi ? this.byLi.get(parentLi) : this.top;
    const before = item.children.length;
    await this._loadPage(item);
    const next = item.children[before];
    if (next) this._focus(next.li);
  }

  _onClick(e) {
    const li = e.target.closest('li[role="treeitem"]');
    if (!li || !this.ul.contains(li)) return;
    if (li.classList.contains("more")) {
      this._focus(li);
      this._more(li);
      return;
    }
    const item = this.byLi.get(li);
    this._focus(li);
    if (e.target.closest(".caret")) {
      if (item.expanded) this.collapse(item);
      else this.expand(item);
    } else {
      this.open(item);
    }
  }

  _onKey(e) {
    const li = e.target.closest('li[role="treeitem"]');
    if (!li || e.altKey || e.ctrlKey || e.metaKey) return;
    const item = this.byLi.get(li) || null;
    const visible = this._visible();
    const at = visible.indexOf(li);
    switch (e.key) {
      case "ArrowDown": this._focus(visible[at + 1]); break;
      case "ArrowUp": this._focus(visible[at - 1]); break;
      case "Home": this._focus(visible[0]); break;
      case "End": this._focus(visible[visible.length - 1]); break;
      case "ArrowRight":
        if (item && item.count !== 0) {
          if (!item.expanded) this.expand(item);
          else this._focus(item.group.querySelector('li[role="treeitem"]'));
        }
        break;
      case "ArrowLeft":
        if (item && item.expanded) this.collapse(item);
        else this._focus(li.parentElement.closest('li[role="treeitem"]'));
        break;
      case "Enter":
      case " ":
        if (item) this.open(item);
        else this._more(li);
        break;
      default:
        return;
    }
    e.preventDefault();
  }
}
