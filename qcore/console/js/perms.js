// What the logged-in user may not do, as learned from the node's refusals.
// A user's roles come with the login, but a role's permissions are readable
// by admins only (SPEC 8.3), so a non-admin's limits are learned when the node
// says "permission denied": the control is disabled from then on, with the
// node's text as its tooltip. Reset at every login.

export class Permissions {
  constructor() {
    this.session = null; // {user, roles, entity} from AuthenticateResponse; null with users off
    this.denied = new Map(); // "write Sensor.Reading" -> the node's text
  }

  reset(session) {
    this.session = session;
    this.denied.clear();
  }

  get isAdmin() {
    return !this.session || this.session.roles.includes("admin");
  }

  static key(action, type, field) {
    return field ? `${action} ${type}.${field}` : `${action} ${type}`;
  }

  deny(action, type, field, message) {
    this.denied.set(Permissions.key(action, type, field), message);
  }

  allowed(action, type, field = null) {
    return !this.denied.has(Permissions.key(action, type, field));
  }

  why(action, type, field = null) {
    return this.denied.get(Permissions.key(action, type, field)) || null;
  }
}
