// Reads the console makes in several places, as ordinary protocol commands.

const TYPES_PAGE = 500;

/** Every entity type, following GetEntityTypes' cursor to the end. */
export async function allEntityTypes(conn) {
  const out = [];
  let cursor = null;
  do {
    const page = await conn.perform({ GetEntityTypes: { page_opts: { limit: TYPES_PAGE, cursor } } });
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

export function readRequest(eid, field) {
  return { Read: { entity_id: eid, field_type: field, value: null, write_time: null, writer_id: null } };
}

export function writeRequest(eid, field, value) {
  return {
    Write: {
      entity_id: eid, field_type: field, value, push_condition: "Always", adjust_behavior: "Set",
      write_time: null, writer_id: null,
    },
  };
}

/** The filled-in Reads of one atomic UpdateEntity batch, in order. */
export async function readBatch(conn, requests) {
  const response = await conn.perform({ UpdateEntity: { request: requests } });
  return response.map((r) => r.Read);
}

/**
 * One field of many entities, in one batch; if the batch fails (one of them was
 * deleted meanwhile: a batch is all-or-nothing), one read each. A failed read
 * gives {error} in its place.
 */
export async function readFieldOfMany(conn, ids, field) {
  if (ids.length === 0) return [];
  try {
    return (await readBatch(conn, ids.map((eid) => readRequest(eid, field)))).map((r) => ({ value: r.value }));
  } catch (err) {
    if (err.kind !== "rejected") throw err;
  }
  return Promise.all(ids.map(async (eid) => {
    try {
      return { value: (await readBatch(conn, [readRequest(eid, field)]))[0].value };
    } catch (error) {
      return { error };
    }
  }));
}

/**
 * An entity's children a page at a time: GetChildren where the node serves it
 * (known after the first try), else null from page(), and count() reads the
 * whole Children list (what a node without GetChildren offers).
 */
export class ChildrenReader {
  constructor(conn) {
    this.conn = conn;
    this.paged = undefined; // does the node serve GetChildren?
  }

  /** {items, total, next_cursor}, or null when the node has no GetChildren. */
  async page(eid, limit, cursor = null) {
    if (this.paged === false) return null;
    try {
      const page = await this.conn.perform({ GetChildren: { entity_id: eid, page_opts: { limit, cursor } } });
      this.paged = true;
      return page;
    } catch (err) {
      if (this.paged === undefined && err.kind === "invalid" && err.message.includes("GetChildren")) {
        this.paged = false;
        return null;
      }
      throw err;
    }
  }

  /** The whole Children list (one read; for a node without GetChildren). */
  async all(eid) {
    const [read] = await readBatch(this.conn, [readRequest(eid, "Children")]);
    return (read.value && read.value.EntityList) || [];
  }

  async count(eid) {
    const page = await this.page(eid, 1);
    return page ? page.total : (await this.all(eid)).length;
  }
}
