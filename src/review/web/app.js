// trialdesk review pages: keyboard keys and a self-refreshing queue. The pages work without
// it; it is the only script they load (CSP: script-src 'self', nothing inline).
(function () {
  "use strict";

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  }

  function current() {
    return document.querySelector("tr[data-href].current");
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var at = all.indexOf(current());
    var next = at < 0 ? 0 : Math.min(all.length - 1, Math.max(0, at + step));
    all.forEach(function (r) { r.classList.remove("current"); });
    all[next].classList.add("current");
    all[next].scrollIntoView({ block: "nearest" });
    var link = all[next].querySelector("a");
    if (link) link.focus({ preventScroll: true });
  }

  function toggleHelp() {
    var help = document.getElementById("keys-help");
    if (help) help.hidden = !help.hidden;
  }

  function assignToMe() {
    var button = document.getElementById("assign-me");
    if (button) { button.click(); return; }
    var row = current();
    var bulk = document.getElementById("bulk");
    if (!row || !bulk) return;
    document.querySelectorAll("input[name=id][form=bulk]").forEach(function (c) {
      c.checked = c.value === row.getAttribute("data-id");
    });
    var go = bulk.querySelector("button[value=assign_me]");
    if (go) go.click();
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o":
      case "Enter": {
        var row = current();
        if (!row) return;
        window.location.href = row.getAttribute("data-href");
        break;
      }
      case "a": assignToMe(); break;
      case "r": {
        var reply = document.getElementById("reply");
        if (!reply) return;
        reply.focus();
        break;
      }
      case "?": toggleHelp(); break;
      case "Escape": {
        var help = document.getElementById("keys-help");
        if (help) help.hidden = true;
        return;
      }
      default: return;
    }
    e.preventDefault();
  });

  // A canned reply goes above what is typed in its textarea.
  document.addEventListener("change", function (e) {
    var pick = e.target;
    if (!pick || !pick.classList || !pick.classList.contains("snippet-pick")) return;
    var option = pick.options[pick.selectedIndex];
    var area = document.getElementById(pick.getAttribute("data-target"));
    var text = option && option.getAttribute("data-text");
    if (!area || !text) return;
    if (area.value.indexOf(text) < 0) {
      area.value = area.value.trim() ? text + "\n\n" + area.value : text;
    }
    pick.selectedIndex = 0;
    area.focus();
  });

  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t && (t.id === "keys-link" || t.id === "keys-close")) {
      e.preventDefault();
      toggleHelp();
    }
  });

  // The queue refreshes its rows, counts and title every 30 s without a reload: what is
  // typed in the filters or the bulk note stays, ticked rows stay ticked.
  var live = document.getElementById("live");
  var body = document.getElementById("rows");
  if (live && live.getAttribute("data-poll")) {
    var url = live.getAttribute("data-poll");
    setInterval(function () {
      if (document.hidden) return;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (res) { return res.ok ? res.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var newLive = doc.getElementById("live");
          if (newLive) live.innerHTML = newLive.innerHTML;
          var newRows = doc.getElementById("rows");
          body = document.getElementById("rows");
          if (newRows && body) {
            var ticked = {};
            body.querySelectorAll("input[name=id]:checked").forEach(function (c) { ticked[c.value] = true; });
            var cur = current();
            var curId = cur && cur.getAttribute("data-id");
            body.innerHTML = newRows.innerHTML;
            body.querySelectorAll("input[name=id]").forEach(function (c) { c.checked = !!ticked[c.value]; });
            if (curId) {
              var again = body.querySelector('tr[data-id="' + curId + '"]');
              if (again) again.classList.add("current");
            }
          }
          document.title = doc.title;
        })
        .catch(function () {});
    }, 30000);
  }
})();
