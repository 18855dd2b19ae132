// The staff consoles' only script: CSRF header on fetch(), confirmation before grave actions.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var token = meta ? meta.getAttribute("content") : "";
  var SAFE = { GET: true, HEAD: true, OPTIONS: true };

  // Every state-changing fetch() to this site carries the session's CSRF token.
  var originalFetch = window.fetch;
  if (originalFetch) {
    window.fetch = function (input, init) {
      init = init || {};
      var method = (init.method || (input && input.method) || "GET").toUpperCase();
      var url = new URL(typeof input === "string" ? input : input.url, window.location.href);
      if (!SAFE[method] && url.origin === window.location.origin && token) {
        var headers = new Headers(init.headers || (input && input.headers) || {});
        if (!headers.has("X-CSRF-Token")) headers.set("X-CSRF-Token", token);
        init.headers = headers;
      }
      return originalFetch.call(window, input, init);
    };
  }

  // <form data-confirm="确定……？"> asks before it is sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
