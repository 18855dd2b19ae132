// Live queues: the element with data-live="<stream url>" is redrawn when the server's event
// stream (admin/live.py) says `changed`. The page's own script may set `element.liveRefresh`
// to a function returning a promise (inbox.js redraws from JSON); otherwise the page is
// fetched again and the element's content replaced by its new copy (the case desks) — unless
// staff are typing in a form inside it, then a note offers to reload instead.
// No EventSource, or a stream that cannot be opened: the same refresh every 5 s (polling).
(function () {
  "use strict";
  var region = document.querySelector("[data-live]");
  if (!region) return;
  var EVERY = 5000;
  var note = document.getElementById("live-note");
  var polling = false;

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function stamp() {
    if (!note) return;
    var now = new Date();
    note.textContent = "已更新 " + two(now.getHours()) + ":" + two(now.getMinutes()) + ":" +
      two(now.getSeconds());
  }

  function edited(field) {
    if (field.type === "checkbox" || field.type === "radio") return field.checked !== field.defaultChecked;
    if (field.tagName === "SELECT") {
      var initial = 0;
      Array.prototype.forEach.call(field.options, function (o, i) { if (o.defaultSelected) initial = i; });
      return field.selectedIndex !== initial;
    }
    return field.value !== field.defaultValue;
  }

  function typing() {
    var active = document.activeElement;
    if (active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName)) return true;
    return Array.prototype.some.call(region.querySelectorAll("input, select, textarea"), edited);
  }

  function swap() {
    if (typing()) {
      if (note) {
        note.textContent = "列表有更新，";
        var link = document.createElement("a");
        link.href = window.location.href;
        link.textContent = "刷新页面";
        note.appendChild(link);
      }
      return Promise.resolve(false);
    }
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (res) {
        if (res.redirected || !res.ok) {
          window.location.reload();          // signed out or refused: the page says why
          throw new Error("refresh " + res.status);
        }
        return res.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(region.id);
        if (!fresh) return false;
        region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes));
        return true;
      });
  }

  function refresh() {
    var redraw = typeof region.liveRefresh === "function" ? region.liveRefresh() : swap();
    return Promise.resolve(redraw).then(function (done) { if (done !== false) stamp(); });
  }

  function poll() {
    if (polling) return;
    polling = true;
    if (note) note.textContent = "每5秒自动刷新";
    (function tick() {
      window.setTimeout(function () {
        if (document.hidden) return tick();
        refresh().catch(function () { /* again at the next tick */ }).then(tick);
      }, EVERY);
    })();
  }

  if (!window.EventSource) return poll();
  var source = new EventSource(region.getAttribute("data-live"), { withCredentials: true });
  // Every `ready` — the first one too — fetches the list once: what changed between drawing the
  // page (or losing the stream) and the stream taking its first look would otherwise be missed.
  source.addEventListener("ready", function () {
    refresh().catch(function () {});
  });
  source.addEventListener("changed", function () {
    refresh().catch(function () {});
  });
  source.addEventListener("ended", function () {
    source.close();
    window.location.reload();              // the session is over: the console says why
  });
  source.onerror = function () {
    // CONNECTING: the browser retries by itself (the stream's life is capped). CLOSED: refused.
    if (source.readyState === EventSource.CLOSED) poll();
  };
})();
