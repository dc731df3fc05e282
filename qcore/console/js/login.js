// The login form, shown when the node answers "authentication required" (users
// on, SPEC 8.3). It sends the same Authenticate message any client sends. The
// user name is kept in sessionStorage (this tab only) to fill the form again;
// the password is kept in memory only, for re-logins after a reconnect, and is
// gone when the tab is closed or reloaded.

import { h, showError } from "./dom.js";

const USER_KEY = "qcore.console.user";

export class Login {
  constructor(conn, { onLogin }) {
    this.conn = conn;
    this.onLogin = onLogin;
    this.user = h("input", { id: "login-user", type: "text", autocomplete: "username", required: true,
      spellcheck: "false", autocapitalize: "none" });
    this.password = h("input", { id: "login-password", type: "password", autocomplete: "current-password", required: true });
    this.error = h("p", { class: "error", hidden: true });
    this.submit = h("button", { type: "submit", class: "primary" }, "Log in");
    this.dialog = h("dialog", { class: "modal login", "aria-labelledby": "login-title" },
      h("form", { onsubmit: (e) => { e.preventDefault(); this._submit(); } },
        h("h3", { id: "login-title" }, "Log in"),
        h("p", { class: "muted" }, "This cluster has users: log in to see and change its data."),
        h("div", { class: "form-grid" },
          h("label", { for: "login-user" }, "User"), this.user,
          h("label", { for: "login-password" }, "Password"), this.password),
        this.error,
        h("div", { class: "dialog-buttons" }, this.submit)));
    // A login cannot be dismissed: without it the node answers nothing else.
    this.dialog.addEventListener("cancel", (e) => e.preventDefault());
    document.body.append(this.dialog);
  }

  /** Show the form (once, however many requests were refused). */
  prompt(reason) {
    if (this.dialog.open) return;
    this.user.value = sessionStorage.getItem(USER_KEY) || "";
    this.password.value = "";
    showError(this.error, reason && reason.kind !== "auth_required" ? reason : null);
    this.dialog.showModal();
    (this.user.value ? this.password : this.user).focus();
  }

  async _submit() {
    this.submit.disabled = true;
    showError(this.error, null);
    try {
      const session = await this.conn.login(this.user.value, this.password.value);
      sessionStorage.setItem(USER_KEY, session.user);
      this.password.value = "";
      this.dialog.close();
      this.onLogin(session);
    } catch (err) {
      showError(this.error, err);
      this.password.select();
    } finally {
      this.submit.disabled = false;
    }
  }

  logout() {
    sessionStorage.removeItem(USER_KEY);
    this.conn.logout();
  }
}
