// The staff inbox: canned phrases into the reply box; the list redrawn from the server's JSON
// whenever live.js says it changed; the open conversation refreshed every 5 s. Text from the
// server is only ever written with textContent: a citizen's message that looks like markup
// stays text.
(function () {
  "use strict";
  var EVERY = 5000;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) {
        if (res.redirected || res.status === 401 || res.status === 403) {
          window.location.reload();      // signed out or refused: the page says why
          throw new Error("session");
        }
        if (!res.ok) throw new Error("updates " + res.status);
        return res.json();
      });
  }

  function poll(fn) {
    function tick() {
      if (document.hidden) return window.setTimeout(tick, EVERY);
      fn().catch(function () { /* try again at the next tick */ })
        .then(function () { window.setTimeout(tick, EVERY); });
    }
    window.setTimeout(tick, EVERY);
  }

  // ------------------------------------------------------------ the list (live.js calls this)
  var list = document.getElementById("inbox-list");
  if (list) {
    list.liveRefresh = function () {
      return getJSON(list.getAttribute("data-updates")).then(function (data) {
        var body = el("tbody");
        data.rows.forEach(function (row) {
          var tr = el("tr", [row.mine ? "mine" : "", row.flagged ? "flagged" : ""].join(" ").trim());
          tr.setAttribute("data-id", row.id);
          tr.appendChild(el("td", "waiting", row.waiting));
          tr.appendChild(el("td", "", row.reason));
          var last = el("td", "last");
          if (row.flagged) {           // art. 24, as the server-rendered list shows it
            last.appendChild(el("strong", "flag error", "⚠ 疑似有害信息"));
            last.appendChild(document.createTextNode(" "));
          }
          var link = el("a", "", row.last || "（无消息）");
          link.href = row.url;
          last.appendChild(link);
          tr.appendChild(last);
          tr.appendChild(el("td", "", row.channel));
          tr.appendChild(el("td", "owner", row.owner || "未接管"));
          tr.appendChild(el("td", "", row.since));
          body.appendChild(tr);
        });
        if (!data.rows.length) {
          var empty = el("tr", "empty");
          var mine = /[?&]mine=1/.test(list.getAttribute("data-updates"));
          var cell = el("td", "", mine ? "您当前没有接管的会话" : "暂无等待人工处理的会话");
          cell.colSpan = 6;
          empty.appendChild(cell);
          body.appendChild(empty);
        }
        list.replaceChild(body, list.tBodies[0]);
      });
    };
  }

  // ------------------------------------------------------------ one conversation
  var history = document.getElementById("history");
  if (history) {
    poll(function () {
      var last = history.getAttribute("data-last") || "0";
      return getJSON(history.getAttribute("data-updates") + "&after=" + last).then(function (data) {
        data.messages.forEach(function (m) {
          if (history.querySelector('li[data-id="' + m.id + '"]')) return;
          var li = el("li", "msg msg-" + m.cls);
          li.setAttribute("data-id", m.id);
          var meta = el("div", "meta");
          meta.appendChild(el("span", "who", m.who));
          meta.appendChild(document.createTextNode(" "));
          meta.appendChild(el("time", "", m.at));
          if (m.qa) meta.appendChild(el("span", "qa", m.qa));
          meta.appendChild(el("span", "delivery", m.delivery));
          li.appendChild(meta);
          li.appendChild(el("div", "text", m.text));
          history.appendChild(li);
          history.setAttribute("data-last", m.id);
        });
        Object.keys(data.deliveries).forEach(function (id) {
          var span = history.querySelector('li[data-id="' + id + '"] .delivery');
          if (span && span.textContent !== data.deliveries[id]) span.textContent = data.deliveries[id];
        });
        if (data.state !== history.getAttribute("data-state") ||
            data.owner !== history.getAttribute("data-owner")) {
          document.getElementById("conv-changed").hidden = false;
        }
      });
    });
  }

  // ------------------------------------------------------------ canned phrases
  var box = document.getElementById("reply-text");
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".canned-phrase");
    if (!button || !box) return;
    var phrase = button.getAttribute("data-text");
    var start = box.selectionStart, end = box.selectionEnd;
    if (typeof start === "number" && document.activeElement === box) {
      box.value = box.value.slice(0, start) + phrase + box.value.slice(end);
    } else {
      box.value = box.value ? box.value + phrase : phrase;
    }
    box.focus();
  });
})();
