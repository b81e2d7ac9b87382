// <herald-inbox>: Herald's notification bell for a host application's pages (see the module
// doc of adapters/http/src/web/embed.rs). Attributes: herald-url (Herald's access URL) and
// token (the user's API token; the `token` property takes it without putting it in the DOM).
// It calls the API with Authorization: Bearer, and follows new notifications by reading the
// watch route's Server-Sent Events through fetch, so the token never travels in a URL.
// Theming: --herald-accent, --herald-badge, --herald-surface, --herald-text on the element.
(function () {
  "use strict";
  if (!window.customElements || customElements.get("herald-inbox")) return;

  var SHOWN = 8;
  var RETRY_FIRST_MS = 1000;
  var RETRY_MAX_MS = 30000;

  var STYLE = [
    ":host { position: relative; display: inline-block; font: 14px/1.4 system-ui, sans-serif;",
    "  --herald-accent: #3451b2; --herald-badge: #c62828; --herald-surface: #fff; --herald-text: #1f2328; }",
    ".bell { position: relative; display: inline-flex; align-items: center; justify-content: center;",
    "  width: 40px; height: 40px; border: 1px solid transparent; border-radius: 50%; background: transparent;",
    "  color: inherit; cursor: pointer; padding: 0; }",
    ".bell:hover { background: rgba(127,127,127,.12); }",
    ".bell:focus-visible { outline: 2px solid var(--herald-accent); outline-offset: 2px; }",
    ".bell svg { width: 22px; height: 22px; }",
    ".badge { position: absolute; top: 2px; right: 0; min-width: 18px; height: 18px; padding: 0 5px;",
    "  box-sizing: border-box; border-radius: 9px; background: var(--herald-badge); color: #fff;",
    "  font-size: 11px; font-weight: 700; line-height: 18px; text-align: center; }",
    ".badge[hidden] { display: none; }",
    ".panel { position: absolute; right: 0; top: 46px; z-index: 1000; width: min(360px, 92vw);",
    "  background: var(--herald-surface); color: var(--herald-text); border: 1px solid #d0d7de;",
    "  border-radius: 10px; box-shadow: 0 8px 24px rgba(0,0,0,.16); overflow: hidden; }",
    ".panel[hidden] { display: none; }",
    ".head { display: flex; align-items: center; justify-content: space-between; gap: 8px;",
    "  padding: 10px 14px; border-bottom: 1px solid #d0d7de; }",
    ".head h2 { margin: 0; font-size: 15px; }",
    "ul { list-style: none; margin: 0; padding: 0; max-height: 360px; overflow-y: auto; }",
    "li { display: flex; gap: 8px; align-items: flex-start; padding: 10px 14px; border-bottom: 1px solid #eaeef2; }",
    "li.unread { background: rgba(52,81,178,.06); }",
    "li.unread .title::before { content: ''; display: inline-block; width: 8px; height: 8px; margin-right: 6px;",
    "  border-radius: 50%; background: var(--herald-accent); vertical-align: middle; }",
    ".body { flex: 1; min-width: 0; }",
    ".title { margin: 0; font-weight: 600; }",
    ".content { margin: 2px 0 0; color: #57606a; overflow: hidden; display: -webkit-box;",
    "  -webkit-line-clamp: 2; -webkit-box-orient: vertical; }",
    ".time { margin: 2px 0 0; color: #6e7781; font-size: 12px; }",
    "button.text { border: 0; background: none; color: var(--herald-accent); cursor: pointer;",
    "  font: inherit; font-size: 13px; padding: 2px 4px; border-radius: 4px; white-space: nowrap; }",
    "button.text:hover { text-decoration: underline; }",
    "button.text:focus-visible, a:focus-visible { outline: 2px solid var(--herald-accent); outline-offset: 1px; }",
    ".empty, .status { padding: 14px; color: #57606a; margin: 0; }",
    ".status[hidden] { display: none; }",
    ".foot { padding: 10px 14px; text-align: right; }",
    ".foot a { color: var(--herald-accent); }",
    ".sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);",
    "  white-space: nowrap; }"
  ].join("\n");

  var BELL_SVG =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false" fill="none" stroke="currentColor"' +
    ' stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
    '<path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.73 21a2 2 0 0 1-3.46 0"/></svg>';

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function when(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    var seconds = Math.round((Date.now() - date.getTime()) / 1000);
    if (seconds < 60) return "just now";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return date.toLocaleDateString();
  }

  // Server-Sent Events records in a growing text: the complete ones and what is left.
  function records(text) {
    var parts = text.replace(/\r\n?/g, "\n").split("\n\n");
    var rest = parts.pop();
    var events = parts.map(function (block) {
      var event = { type: "message", data: [] };
      block.split("\n").forEach(function (line) {
        if (line.charAt(0) === ":") return;
        var colon = line.indexOf(":");
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = value;
        else if (field === "data") event.data.push(value);
      });
      event.data = event.data.join("\n");
      return event;
    });
    return { events: events, rest: rest };
  }

  var counter = 0;

  class HeraldInbox extends HTMLElement {
    static get observedAttributes() { return ["herald-url", "token"]; }
  }

  // The token, given as a property: kept off the DOM.
  Object.defineProperty(HeraldInbox.prototype, "token", {
    get: function () { return this._token || this.getAttribute("token") || ""; },
    set: function (value) { this._token = value ? String(value) : ""; this._restart(); }
  });

  HeraldInbox.prototype._build = function () {
    if (this._root) return;
    var id = "herald-inbox-" + (++counter);
    var root = this.attachShadow({ mode: "open" });
    var style = element("style");
    style.textContent = STYLE;
    root.appendChild(style);

    var bell = element("button", "bell");
    bell.type = "button";
    bell.setAttribute("aria-haspopup", "true");
    bell.setAttribute("aria-expanded", "false");
    bell.setAttribute("aria-controls", id);
    bell.innerHTML = BELL_SVG;
    var badge = element("span", "badge");
    badge.setAttribute("aria-hidden", "true");
    badge.hidden = true;
    bell.appendChild(badge);
    root.appendChild(bell);

    var panel = element("div", "panel");
    panel.id = id;
    panel.hidden = true;
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", "Notifications");
    var head = element("div", "head");
    var heading = element("h2", null, "Notifications");
    heading.tabIndex = -1;
    var markAll = element("button", "text mark-all", "Mark all read");
    markAll.type = "button";
    head.appendChild(heading);
    head.appendChild(markAll);
    panel.appendChild(head);
    var status = element("p", "status");
    status.hidden = true;
    status.setAttribute("role", "status");
    panel.appendChild(status);
    var list = element("ul", "list");
    panel.appendChild(list);
    var foot = element("div", "foot");
    var all = element("a", "all", "Open the inbox");
    foot.appendChild(all);
    panel.appendChild(foot);
    root.appendChild(panel);

    var announce = element("span", "sr-only");
    announce.setAttribute("aria-live", "polite");
    root.appendChild(announce);

    this._root = root;
    this._bell = bell;
    this._badge = badge;
    this._panel = panel;
    this._heading = heading;
    this._status = status;
    this._list = list;
    this._all = all;
    this._announce = announce;
    this._notifications = [];
    this._unread = 0;

    var self = this;
    bell.addEventListener("click", function () { self._toggle(!self._isOpen()); });
    markAll.addEventListener("click", function () { self._markAllRead(); });
    list.addEventListener("click", function (event) {
      var button = event.target.closest && event.target.closest("button[data-id]");
      if (button) self._markRead(button.dataset.id);
    });
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && self._isOpen()) {
        event.preventDefault();
        self._toggle(false);
        bell.focus();
      }
    });
    this._outside = function (event) {
      if (self._isOpen() && event.composedPath().indexOf(self) < 0) self._toggle(false);
    };
  };

  HeraldInbox.prototype.connectedCallback = function () {
    // A token set as a property before this script ran sits on the element itself.
    if (Object.prototype.hasOwnProperty.call(this, "token")) {
      var token = this.token;
      delete this.token;
      this._token = token;
    }
    this._build();
    this._connected = true;
    document.addEventListener("click", this._outside);
    this._render();
    this._restart();
  };

  HeraldInbox.prototype.disconnectedCallback = function () {
    this._connected = false;
    document.removeEventListener("click", this._outside);
    this._stop();
  };

  HeraldInbox.prototype.attributeChangedCallback = function () {
    if (this._connected) this._restart();
  };

  HeraldInbox.prototype._base = function () {
    return (this.getAttribute("herald-url") || "").replace(/\/+$/, "");
  };

  HeraldInbox.prototype._api = function (method, path, body, signal) {
    var headers = { Authorization: "Bearer " + this.token, Accept: "application/json" };
    var init = { method: method, headers: headers, signal: signal, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(this._base() + "/api/v2/notifications/inbox" + path, init).then(function (response) {
      if (!response.ok) {
        var error = new Error("Herald answered " + response.status);
        error.status = response.status;
        throw error;
      }
      return response.status === 204 ? null : response.json();
    });
  };

  HeraldInbox.prototype._stop = function () {
    if (this._abort) this._abort.abort();
    this._abort = null;
    clearTimeout(this._retry);
    this.dataset.live = "closed";
  };

  // (Re)starts the list and the live stream with the current URL and token.
  HeraldInbox.prototype._restart = function () {
    if (!this._connected) return;
    this._stop();
    if (!this._base() || !this.token) {
      this._say("Not configured: herald-url and token are needed.");
      return;
    }
    this._all.href = this._base() + "/inbox";
    this._delay = RETRY_FIRST_MS;
    this._abort = new AbortController();
    this._follow(this._abort);
  };

  HeraldInbox.prototype._load = function (signal) {
    var self = this;
    return this._api("GET", "", undefined, signal).then(function (page) {
      self._notifications = page.notifications.slice(0, SHOWN);
      self._unread = page.unread_count;
      self._say("");
      self._render();
    });
  };

  // The list, then the live stream until it ends; then again after a pause.
  HeraldInbox.prototype._follow = function (abort) {
    var self = this;
    var signal = abort.signal;
    // The watch subscribes before it answers: loading the list after it is open misses nothing.
    fetch(this._base() + "/api/v2/notifications/inbox/watch", {
      headers: { Authorization: "Bearer " + this.token, Accept: "text/event-stream" },
      credentials: "omit",
      cache: "no-store",
      signal: signal
    }).then(function (response) {
      if (!response.ok || !response.body) {
        var error = new Error("Herald answered " + response.status);
        error.status = response.status;
        throw error;
      }
      return self._load(signal).then(function () {
        self.dataset.live = "open";
        self._delay = RETRY_FIRST_MS;
        return self._read(response.body.getReader());
      });
    }).then(function () {
      return "ended";
    }, function (error) {
      if (signal.aborted) return "aborted";
      if (error && (error.status === 401 || error.status === 403)) {
        self._say("Signed out of notifications.");
        return "refused";
      }
      self._say("Cannot reach notifications; trying again.");
      return "failed";
    }).then(function (outcome) {
      if (outcome === "aborted" || signal.aborted) return;
      self.dataset.live = "closed";
      if (outcome === "refused") return;
      self._retry = setTimeout(function () {
        if (!signal.aborted) self._follow(abort);
      }, self._delay);
      self._delay = Math.min(self._delay * 2, RETRY_MAX_MS);
    });
  };

  HeraldInbox.prototype._read = function (reader) {
    var self = this;
    var decoder = new TextDecoder();
    var text = "";
    function next() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        text += decoder.decode(chunk.value, { stream: true });
        var parsed = records(text);
        text = parsed.rest;
        parsed.events.forEach(function (event) {
          if (event.type === "notification") self._arrived(JSON.parse(event.data));
        });
        return next();
      });
    }
    return next();
  };

  HeraldInbox.prototype._arrived = function (update) {
    var n = update.notification;
    this._unread = update.unread_count;
    this._notifications = [n].concat(this._notifications.filter(function (m) { return m.id !== n.id; }))
      .slice(0, SHOWN);
    this._announce.textContent = "New notification: " + n.title;
    this._render();
  };

  HeraldInbox.prototype._markRead = function (id) {
    var self = this;
    this._api("PUT", "/" + encodeURIComponent(id) + "/read-status", { is_read: true })
      .then(function (update) {
        self._unread = update.unread_count;
        self._notifications = self._notifications.map(function (m) {
          return m.id === id ? update.notification : m;
        });
        self._render();
        self._heading.focus();
      })
      .catch(function () { self._say("Could not mark it read; try again."); });
  };

  HeraldInbox.prototype._markAllRead = function () {
    var self = this;
    this._api("PUT", "/mark-all-as-read", {})
      .then(function () { return self._load(); })
      .catch(function () { self._say("Could not mark them read; try again."); });
  };

  HeraldInbox.prototype._isOpen = function () {
    return !this._panel.hidden;
  };

  HeraldInbox.prototype._toggle = function (open) {
    this._panel.hidden = !open;
    this._bell.setAttribute("aria-expanded", String(open));
    if (open) {
      this._heading.focus();
      // Another page (Herald's /inbox) may have changed what is read.
      if (this._abort) this._load(this._abort.signal).catch(function () {});
    }
  };

  HeraldInbox.prototype._say = function (message) {
    this._status.textContent = message;
    this._status.hidden = !message;
  };

  HeraldInbox.prototype._render = function () {
    var unread = this._unread;
    this._badge.textContent = unread > 99 ? "99+" : String(unread);
    this._badge.hidden = unread === 0;
    this.dataset.unread = String(unread);
    this._bell.setAttribute(
      "aria-label",
      "Notifications, " + (unread === 0 ? "none unread" : unread + " unread")
    );
    var list = this._list;
    list.textContent = "";
    if (!this._notifications.length) {
      list.appendChild(element("li", "empty", "No notifications yet."));
      return;
    }
    this._notifications.forEach(function (n) {
      var li = element("li", n.read_at ? "read" : "unread");
      li.dataset.id = n.id;
      var body = element("div", "body");
      body.appendChild(element("p", "title", n.title));
      if (n.content) body.appendChild(element("p", "content", n.content));
      var time = element("time", null, when(n.created_at));
      time.dateTime = n.created_at;
      var stamp = element("p", "time");
      stamp.appendChild(time);
      body.appendChild(stamp);
      li.appendChild(body);
      if (!n.read_at) {
        var button = element("button", "text mark-read", "Mark read");
        button.type = "button";
        button.dataset.id = n.id;
        button.setAttribute("aria-label", "Mark \u201c" + n.title + "\u201d read");
        li.appendChild(button);
      }
      list.appendChild(li);
    });
  };

  customElements.define("herald-inbox", HeraldInbox);
})();
