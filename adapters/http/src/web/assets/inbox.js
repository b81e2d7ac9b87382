// The inbox's live part: new notifications arrive as Server-Sent Events on the session
// (/inbox/events) and are added to the top of the list; the unread count follows. Without
// this script the page works the same, reloaded by hand.
(function () {
  "use strict";
  var list = document.getElementById("notifications");
  var count = document.getElementById("unread-count");
  var csrf = document.querySelector('meta[name="csrf-token"]');
  if (!list || !count || !csrf || !window.EventSource) return;
  var back = list.dataset.filter === "unread" ? "/inbox?filter=unread" : "/inbox";

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function hidden(name, value) {
    var input = element("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  }

  function item(n) {
    var li = element("li", "notification unread");
    li.dataset.id = n.id;
    var body = element("div", "body");
    body.appendChild(element("h2", "title", n.title));
    body.appendChild(element("p", "content", n.content));
    if (n.actions && n.actions.length) {
      var actions = element("p", "actions");
      n.actions.forEach(function (a) {
        var link = element("a", null, a.label);
        link.href = a.url;
        actions.appendChild(link);
        actions.appendChild(document.createTextNode(" "));
      });
      body.appendChild(actions);
    }
    var time = element("time", null, "just now");
    time.dateTime = n.created_at;
    var when = element("p", "time");
    when.appendChild(time);
    body.appendChild(when);
    li.appendChild(body);
    var form = element("form", "inline");
    form.method = "post";
    form.action = "/inbox/" + encodeURIComponent(n.id) + "/read";
    form.appendChild(hidden("csrf", csrf.content));
    form.appendChild(hidden("back", back));
    form.appendChild(hidden("is_read", "true"));
    var button = element("button", null, "Mark as read");
    button.type = "submit";
    button.setAttribute("aria-label", "Mark \u201c" + n.title + "\u201d as read");
    form.appendChild(button);
    li.appendChild(form);
    return li;
  }

  var source = new EventSource("/inbox/events");
  // The list says when it is live (the server subscribes before it answers): tests wait
  // for it, and a style could show it.
  source.addEventListener("open", function () { list.dataset.live = "open"; });
  source.addEventListener("error", function () { list.dataset.live = "closed"; });
  source.addEventListener("notification", function (event) {
    var update = JSON.parse(event.data);
    count.textContent = String(update.unread_count);
    if (list.querySelector('[data-id="' + update.notification.id + '"]')) return;
    list.insertBefore(item(update.notification), list.firstChild);
    var empty = document.getElementById("empty");
    if (empty) empty.remove();
  });
})();
