/* 嘉禾市政务服务智能助手 — citizen web chat.
 * Plain script, no build step: the deployment machines have no internet.
 * Server text is only ever written with textContent so a reply can never inject markup. */
(function () {
  'use strict';

  var MAX_LEN = 500;
  var REQUEST_TIMEOUT_MS = 30000;
  var QUICK_REPLIES = ['社保卡补办', '公积金提取', '我要投诉', '查询办件进度', '转人工'];
  var WELCOME_TEXT =
    '您好！我是嘉禾市政务服务智能助手，可以为您提供：\n' +
    '· 政策咨询：社保、公积金、户籍等办事政策解答\n' +
    '· 投诉举报：反映问题、提交诉求\n' +
    '· 办件进度查询：凭办件编号查询办理进度\n' +
    '· 转人工：需要时为您转接人工客服\n' +
    '请直接输入您的问题，或点击下方常用服务。';
  var NETWORK_ERROR = '网络连接失败，请检查网络后重试';
  // Used only when an error response has no readable {"error": ...} body.
  var STATUS_ERRORS = {
    400: '消息内容有误，请修改后重新发送',
    413: '消息过长，请控制在500字以内',
    429: '发送太频繁了，请稍后再试',
    503: '系统繁忙，请稍后再试'
  };
  // Resending the identical text cannot fix these, so no 重试 button for them.
  var NOT_RETRYABLE = { 400: true, 413: true };
  var FEEDBACK_THANKS = '感谢您的反馈';
  var FEEDBACK_FAILED = '评价提交失败，请稍后再试';
  // Messages that arrive later (a unit's reply, a status change, a staff answer): polled.
  var POLL_MS = 5000;
  var POLL_BACKOFF_MS = [5000, 10000, 30000];   // after 1, 2, 3+ failed polls in a row
  var POLL_TIMEOUT_MS = 15000;
  var SOURCE_LABELS = { unit: '单位答复', staff: '人工客服', system: '系统通知' };

  var $ = function (id) { return document.getElementById(id); };
  var log = $('chat-log');
  var input = $('chat-input');
  var sendBtn = $('chat-send');
  var form = $('composer');
  var counter = $('chat-counter');
  var limitWarning = $('chat-limit');
  var typing = $('typing');
  var typingText = $('typing-text');
  var staffNotice = $('staff-notice');
  var largeToggle = $('large-text-toggle');
  var srStatus = $('sr-status');

  var busy = false;
  var overLimit = false;

  // localStorage can throw (privacy mode, disabled storage); the chat must still work.
  function storeGet(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function storeSet(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* keep in memory only */ }
  }

  function randomHex(bytes) {
    var buf = new Uint8Array(bytes);
    window.crypto.getRandomValues(buf);
    return Array.prototype.map.call(buf, function (b) {
      return (b < 16 ? '0' : '') + b.toString(16);
    }).join('');
  }

  // crypto.randomUUID only exists on HTTPS/localhost; intranet deployments may be plain HTTP.
  function uuid4() {
    var h = randomHex(16).split('');
    h[12] = '4';
    h[16] = '89ab'[parseInt(h[16], 16) & 3];
    h = h.join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' +
      h.slice(16, 20) + '-' + h.slice(20);
  }

  function getSender() {
    var id = storeGet('govchat.sender');
    if (!id || !/^web-[0-9a-f]{16}$/.test(id)) {
      id = 'web-' + randomHex(8);
      storeSet('govchat.sender', id);
    }
    return id;
  }
  var sender = getSender();

  /* ---------- 大字模式 ---------- */

  function applyLargeText(on) {
    document.documentElement.classList.toggle('large-text', on);
    largeToggle.setAttribute('aria-pressed', on ? 'true' : 'false');
  }
  applyLargeText(storeGet('govchat.largeText') === '1');
  largeToggle.addEventListener('click', function () {
    var on = largeToggle.getAttribute('aria-pressed') !== 'true';
    applyLargeText(on);
    storeSet('govchat.largeText', on ? '1' : '0');
    autosize();
  });

  /* ---------- rendering ---------- */

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function makeBubble(role, kind) {
    var bubble = el('div', 'msg ' + (role === 'user' ? 'msg-user' : 'msg-bot'));
    bubble.setAttribute('data-kind', kind);
    return bubble;
  }

  function announce(text) {
    // Clearing first makes screen readers repeat an identical message.
    srStatus.textContent = '';
    window.setTimeout(function () { srStatus.textContent = text; }, 50);
  }

  // If the new content is taller than the view, show its start so the citizen
  // does not land in the middle of a long answer; otherwise go to the very end.
  function scrollToNewest(node) {
    if (node && log.scrollHeight - node.offsetTop > log.clientHeight) {
      log.scrollTop = node.offsetTop - 8;
    } else {
      log.scrollTop = log.scrollHeight;
    }
  }

  function append(node) {
    log.appendChild(node);
    return node;
  }

  function addUserBubble(text) {
    var bubble = makeBubble('user', 'user');
    bubble.appendChild(el('p', 'msg-text', text));
    append(bubble);
    scrollToNewest(bubble);
  }

  function optionLabel(opt) {
    // Clarify options are numbered so the citizen can also just type the number.
    if (/^\d{1,2}$/.test(opt.payload) && opt.title.indexOf(opt.payload) !== 0) {
      return opt.payload + '. ' + opt.title;
    }
    return opt.title;
  }

  function renderOptions(options) {
    var group = el('div', 'options');
    group.setAttribute('role', 'group');
    group.setAttribute('aria-label', '可选项');
    options.forEach(function (opt) {
      var btn = el('button', 'option', optionLabel(opt));
      btn.type = 'button';
      btn.addEventListener('click', function () {
        send(opt.payload, { display: opt.title });
      });
      group.appendChild(btn);
    });
    return group;
  }

  function copyText(text, sourceNode) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP fallback: the Clipboard API is unavailable outside secure contexts.
    return new Promise(function (resolve, reject) {
      var range = document.createRange();
      range.selectNodeContents(sourceNode);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      if (ok) { sel.removeAllRanges(); resolve(); } else { reject(new Error('copy failed')); }
    });
  }

  function renderCaseNo(caseNo) {
    var box = el('div', 'case-box');
    box.appendChild(el('span', 'case-label', '办件编号：'));
    var code = el('code', 'case-no', caseNo);
    box.appendChild(code);
    var btn = el('button', 'small-btn', '复制');
    btn.type = 'button';
    btn.setAttribute('aria-label', '复制办件编号 ' + caseNo);
    btn.addEventListener('click', function () {
      copyText(caseNo, code).then(function () {
        btn.textContent = '已复制';
        announce('已复制办件编号 ' + caseNo);
        window.setTimeout(function () { btn.textContent = '复制'; }, 2000);
      }, function () {
        // The number is left selected by the fallback, so the citizen can copy it by hand.
        announce('复制失败，请长按编号手动复制');
      });
    });
    box.appendChild(btn);
    return box;
  }

  /* ---------- 有帮助 / 没帮助 on answers ---------- */

  function postFeedback(replyId, helpful) {
    return fetch('/api/chat/feedback', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ sender: sender, reply_id: replyId, helpful: helpful })
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        if (res.ok) return body;
        throw new Error(body && typeof body.error === 'string' && body.error ? body.error : FEEDBACK_FAILED);
      });
    }, function () {
      throw new Error(NETWORK_ERROR);
    });
  }

  function renderFeedback(replyId) {
    var box = el('div', 'feedback');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', '这条答复对您有帮助吗');
    var status = el('span', 'feedback-status');
    var buttons = [[true, '有帮助', '👍'], [false, '没帮助', '👎']].map(function (choice) {
      var btn = el('button', 'small-btn feedback-btn', choice[1] + ' ');
      btn.type = 'button';
      btn.setAttribute('data-helpful', String(choice[0]));
      var icon = el('span', null, choice[2]);
      icon.setAttribute('aria-hidden', 'true');   // the words say it; screen readers skip the emoji
      btn.appendChild(icon);
      btn.addEventListener('click', function () { vote(choice[0]); });
      box.appendChild(btn);
      return btn;
    });
    box.appendChild(status);

    function vote(helpful) {
      buttons.forEach(function (b) { b.disabled = true; });
      status.classList.remove('is-error');
      status.textContent = '';
      postFeedback(replyId, helpful).then(function () {
        buttons.forEach(function (b) { b.remove(); });
        status.textContent = FEEDBACK_THANKS;
        announce(FEEDBACK_THANKS);
      }, function (err) {
        // Let the citizen try again; the server keeps one vote per answer.
        buttons.forEach(function (b) { b.disabled = false; });
        status.classList.add('is-error');
        status.textContent = err.message || FEEDBACK_FAILED;
        announce(status.textContent);
      });
    }
    return box;
  }

  function validOptions(options) {
    if (!Array.isArray(options)) return [];
    return options.filter(function (o) {
      return o && typeof o.title === 'string' && o.title && o.payload != null;
    }).map(function (o) {
      return { title: o.title, payload: String(o.payload) };
    });
  }

  function renderReply(reply) {
    var kind = typeof reply.kind === 'string' && reply.kind ? reply.kind : 'info';
    var bubble = makeBubble('bot', kind);
    if (typeof reply.text === 'string' && reply.text) {
      bubble.appendChild(el('p', 'msg-text', reply.text));
    }
    if (typeof reply.case_no === 'string' && reply.case_no) {
      bubble.appendChild(renderCaseNo(reply.case_no));
    }
    if (typeof reply.qa_id === 'string' && reply.qa_id) {
      bubble.appendChild(el('p', 'msg-source', '来源：问答库 ' + reply.qa_id));
    }
    if (kind === 'answer' && typeof reply.id === 'number') {
      bubble.appendChild(renderFeedback(reply.id));
    }
    var options = validOptions(reply.options);
    if (options.length) bubble.appendChild(renderOptions(options));
    if (!bubble.childNodes.length) return null;
    return append(bubble);
  }

  // "2026-11-27T09:30:00+08:00" (China time, as the server sends it) -> "11-27 09:30".
  function shortTime(at) {
    var m = /^\d{4}-(\d{2}-\d{2})T(\d{2}:\d{2})/.exec(typeof at === 'string' ? at : '');
    return m ? m[1] + ' ' + m[2] : '';
  }

  function renderUpdate(msg) {
    var kind = typeof msg.kind === 'string' && msg.kind ? msg.kind : 'info';
    var bubble = makeBubble('bot', kind);
    bubble.classList.add('msg-update');
    var source = SOURCE_LABELS.hasOwnProperty(msg.source) ? msg.source : 'system';
    bubble.setAttribute('data-source', source);
    var head = el('p', 'msg-label');
    head.appendChild(el('span', 'msg-label-text', SOURCE_LABELS[source]));
    var when = shortTime(msg.at);
    if (when) {
      var time = el('time', 'msg-time', when);
      time.setAttribute('datetime', msg.at);
      head.appendChild(time);
    }
    bubble.appendChild(head);
    if (typeof msg.text === 'string' && msg.text) {
      bubble.appendChild(el('p', 'msg-text', msg.text));
    }
    if (typeof msg.case_no === 'string' && msg.case_no) {
      bubble.appendChild(renderCaseNo(msg.case_no));
    }
    return append(bubble);
  }

  function renderWelcome() {
    var bubble = makeBubble('bot', 'info');
    bubble.appendChild(el('p', 'msg-text', WELCOME_TEXT));
    bubble.appendChild(renderOptions(QUICK_REPLIES.map(function (t) {
      return { title: t, payload: t };
    })));
    append(bubble);
  }

  function renderError(message, retry) {
    var bubble = makeBubble('bot', 'error');
    bubble.classList.add('msg-error');
    bubble.setAttribute('role', 'alert');
    bubble.appendChild(el('p', 'msg-text', message));
    if (retry) {
      var btn = el('button', 'small-btn', '重试');
      btn.type = 'button';
      btn.addEventListener('click', function () {
        if (busy) return;
        btn.remove();
        // Park focus on the log (not the textarea) so phones don't pop the keyboard open.
        log.focus({ preventScroll: true });
        retry();
      });
      bubble.appendChild(btn);
    }
    append(bubble);
    scrollToNewest(bubble);
  }

  /* ---------- state ---------- */

  function setBusy(on) {
    busy = on;
    typing.classList.toggle('is-active', on);
    typingText.textContent = on ? '助手正在输入' : '';
    updateSendState();
  }

  function setStaffMode(on) {
    staffNotice.hidden = !on;
  }

  function charCount(text) {
    // Count code points, as the server does, so emoji are not counted twice.
    return Array.from(text).length;
  }

  function updateSendState() {
    var n = charCount(input.value.trim());
    var wasOver = overLimit;
    overLimit = n > MAX_LEN;
    counter.textContent = n + '/' + MAX_LEN;
    counter.classList.toggle('is-over', overLimit);
    input.setAttribute('aria-invalid', overLimit ? 'true' : 'false');
    // Only touch the alert when the state flips, so it isn't re-announced per keystroke.
    if (overLimit !== wasOver) {
      limitWarning.textContent = overLimit
        ? '内容已超过' + MAX_LEN + '字（当前' + n + '字），请删减后再发送'
        : '';
    }
    sendBtn.disabled = busy || overLimit;
  }

  function autosize() {
    input.style.height = 'auto';
    input.style.height = input.scrollHeight + 4 + 'px';
  }

  /* ---------- sending ---------- */

  function postChat(text, messageId) {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller && window.setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS);
    return fetch('/api/chat', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ sender: sender, text: text, message_id: messageId }),
      signal: controller ? controller.signal : undefined
    }).then(function (res) {
      return res.json().catch(function () { return null; }).then(function (body) {
        return { status: res.status, ok: res.ok, body: body };
      });
    }).finally(function () {
      if (timer) window.clearTimeout(timer);
    });
  }

  /* text: what the server receives; opts.display: what the citizen sees in their bubble;
   * opts.fromInput: the text came from the textarea and must be put back if sending fails. */
  function send(text, opts) {
    opts = opts || {};
    text = String(text).trim();
    if (busy || !text) return;
    if (charCount(text) > MAX_LEN) {
      updateSendState();
      return;
    }
    addUserBubble(opts.display || text);
    if (opts.fromInput) {
      input.value = '';
      autosize();
    }
    attempt(text, uuid4(), opts);
  }

  function attempt(text, messageId, opts) {
    setBusy(true);

    function fail(message, retryable) {
      setBusy(false);
      // Put the citizen's words back unless they have started typing something new.
      if (opts.fromInput && !input.value.trim()) {
        input.value = text;
        autosize();
        updateSendState();
      }
      renderError(message, retryable ? function () { attempt(text, messageId, opts); } : null);
    }

    postChat(text, messageId).then(function (res) {
      if (!res.ok) {
        var msg = res.body && typeof res.body.error === 'string' && res.body.error
          ? res.body.error
          : (STATUS_ERRORS[res.status] || '服务暂时不可用，请稍后再试');
        fail(msg, !NOT_RETRYABLE[res.status]);
        return;
      }
      setBusy(false);
      // A successful retry makes the restored copy in the input redundant.
      if (opts.fromInput && input.value.trim() === text) {
        input.value = '';
        autosize();
        updateSendState();
      }
      var body = res.body || {};
      setStaffMode(body.status === 'with_staff');
      var replies = Array.isArray(body.replies) ? body.replies : [];
      var first = null;
      replies.forEach(function (r) {
        if (!r || typeof r !== 'object') return;
        var node = renderReply(r);
        if (node && !first) first = node;
      });
      if (first) scrollToNewest(first);
    }, function () {
      fail(NETWORK_ERROR, true);
    });
  }

  /* ---------- messages that arrive later ---------- */

  // The cursor is only ever the server's last_id from /api/chat/updates: ids of the replies to
  // the citizen's own questions are not used, since an update stored while such a question was
  // being answered has a smaller id than the answer and would be skipped.
  var LAST_SEEN_KEY = 'govchat.lastUpdate.' + sender;
  var lastSeen = (function () {
    var v = storeGet(LAST_SEEN_KEY);
    return v && /^\d{1,10}$/.test(v) ? parseInt(v, 10) : 0;
  }());
  var pollTimer = null;
  var polling = false;
  var pollFailures = 0;

  function rememberSeen(id) {
    if (id <= lastSeen) return;
    lastSeen = id;
    // Another tab of the same citizen may be further along; keep the higher mark.
    var stored = parseInt(storeGet(LAST_SEEN_KEY) || '0', 10) || 0;
    if (id > stored) storeSet(LAST_SEEN_KEY, String(id));
  }

  function fetchUpdates() {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller && window.setTimeout(function () { controller.abort(); }, POLL_TIMEOUT_MS);
    var url = '/api/chat/updates?sender=' + encodeURIComponent(sender) + '&after=' + lastSeen;
    return fetch(url, {
      cache: 'no-store',
      headers: { Accept: 'application/json' },
      signal: controller ? controller.signal : undefined
    }).then(function (res) {
      if (!res.ok) throw new Error('updates ' + res.status);
      return res.json();
    }).finally(function () {
      if (timer) window.clearTimeout(timer);
    });
  }

  function showUpdates(body) {
    var messages = body && Array.isArray(body.messages) ? body.messages : [];
    var atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    var first = null;
    var labels = [];
    messages.forEach(function (m) {
      if (!m || typeof m !== 'object' || typeof m.id !== 'number' || m.id <= lastSeen) return;
      var node = renderUpdate(m);
      if (!first) first = node;
      labels.push(SOURCE_LABELS[node.getAttribute('data-source')]);
      rememberSeen(m.id);
    });
    if (body && typeof body.last_id === 'number') rememberSeen(body.last_id);
    if (!first) return;
    // Someone scrolled up to read earlier messages keeps their place.
    if (atEnd) scrollToNewest(first);
    // The log reads the bubbles themselves; this says where they came from.
    announce(labels.length === 1
      ? '收到新消息：' + labels[0]
      : '收到' + labels.length + '条新消息');
  }

  function schedulePoll(delay) {
    if (pollTimer) window.clearTimeout(pollTimer);
    pollTimer = null;
    if (document.hidden) return;       // resumed by visibilitychange
    pollTimer = window.setTimeout(poll, delay);
  }

  function poll() {
    if (pollTimer) window.clearTimeout(pollTimer);
    pollTimer = null;
    if (polling || document.hidden) return;
    polling = true;
    fetchUpdates().then(function (body) {
      pollFailures = 0;
      showUpdates(body);
    }, function () {
      // Quietly: a missed poll is not the citizen's problem; the next one catches up.
      pollFailures += 1;
    }).finally(function () {
      polling = false;
      schedulePoll(pollFailures
        ? POLL_BACKOFF_MS[Math.min(pollFailures, POLL_BACKOFF_MS.length) - 1]
        : POLL_MS);
    });
  }

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) {
      if (pollTimer) window.clearTimeout(pollTimer);
      pollTimer = null;
    } else {
      poll();
    }
  });

  /* ---------- wiring ---------- */

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    send(input.value, { fromInput: true });
  });

  input.addEventListener('keydown', function (e) {
    // isComposing / 229: Enter that confirms a pinyin IME candidate must not send.
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    if (sendBtn.disabled) return;
    send(input.value, { fromInput: true });
  });

  input.addEventListener('input', function () {
    autosize();
    updateSendState();
  });

  renderWelcome();
  updateSendState();
  poll();        // what arrived since the last visit, then every POLL_MS
})();
