// mcpt web UI: hash-routed views over the orchestrator's REST API (/api/...) and its live event
// stream (the WebSocket /api/events, contract: schemas/events.schema.json). Plain browser
// JavaScript, no dependencies, no build step.
//
// This file: the helpers, the API client and its token dialog, the live stream, the router, and
// the cluster, alerts and executions views. form.js adds the new-execution form, execution.js
// the execution page; they take what they need from window.Mcpt. charts.js (McptCharts.line)
// draws the charts.
//
// Routes: #/cluster, #/executions, #/new, #/executions/<id>, #/alerts.
(function () {
  'use strict';

  var TOKEN_KEY = 'mcpt.token';
  var TERMINAL = { completed: 1, completed_degraded: 1, failed: 1, cancelled: 1 };

  // ---------------------------------------------------------------- small helpers

  // h('div', {class: 'x', text: 'y', onclick: fn, 'data-a': 1}, [children]) -> element.
  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'text') el.textContent = String(v);
        else if (k === 'class') el.className = v;
        else if (k.slice(0, 2) === 'on' && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (v === true) el.setAttribute(k, '');
        else el.setAttribute(k, String(v));
      });
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    if (children === null || children === undefined) return el;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    });
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
  }

  function byId(id) { return document.getElementById(id); }

  function finite(v) { return typeof v === 'number' && isFinite(v); }

  // A figure: thousands grouped, at most `digits` decimals.
  function num(v, digits) {
    if (!finite(v)) return '–';
    return v.toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 0 : digits });
  }

  function rps(v) {
    if (!finite(v)) return '–';
    return num(v, Math.abs(v) < 10 ? 2 : Math.abs(v) < 100 ? 1 : 0);
  }

  function ms(v) {
    if (!finite(v)) return '–';
    return num(v, v < 1 ? 3 : v < 10 ? 2 : v < 100 ? 1 : 0) + ' ms';
  }

  function pct(v) { return finite(v) ? num(v, v < 10 ? 1 : 0) + '%' : '–'; }

  function clock(t) {
    if (!finite(t) || t <= 0) return '–';
    var d = new Date(t);
    var today = new Date();
    var time = d.toLocaleTimeString('en-GB', { hour12: false });
    return d.toDateString() === today.toDateString() ? time : d.toISOString().slice(0, 10) + ' ' + time;
  }

  function seconds(s) {
    if (!finite(s)) return '–';
    if (s < 60) return num(s, s < 10 ? 1 : 0) + ' s';
    var m = Math.floor(s / 60), r = Math.round(s % 60);
    if (m < 60) return m + ' min' + (r ? ' ' + r + ' s' : '');
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }

  function ago(msSince) {
    if (!finite(msSince)) return '–';
    return msSince < 1000 ? 'just now' : seconds(msSince / 1000) + ' ago';
  }

  function badge(value, kind) {
    var v = value === null || value === undefined ? 'unknown' : String(value);
    return h('span', { class: 'badge ' + (kind || 'state') + '-' + v.replace(/[^a-z_]/gi, ''), text: v.replace(/_/g, ' ') });
  }

  // A horizontal bar for a 0..100 figure of a `kind`: 'usage' (high is hot), 'score' (a health
  // score: low is hot) or 'progress' (never hot).
  function bar(value, title, kind) {
    var outer = h('span', { class: 'bar', title: title || '' });
    var inner = h('span', { class: 'fill' });
    var v = finite(value) ? Math.max(0, Math.min(100, value)) : 0;
    inner.style.width = v + '%';
    var heat = kind === 'score' ? 100 - v : kind === 'progress' ? 0 : v;
    if (heat >= (kind === 'score' ? 50 : 90)) inner.classList.add('hot');
    else if (heat >= (kind === 'score' ? 25 : 75)) inner.classList.add('warm');
    outer.appendChild(inner);
    return outer;
  }

  // A numeric column's header (right-aligned like its cells).
  function N(text) { return { text: text, class: 'num' }; }

  // A table in a box that scrolls sideways rather than the page, should a column run wide.
  function table(headers, rows, attrs) {
    return h('div', { class: 'table-box' }, h('table', attrs || { class: 'grid' }, [
      h('thead', null, h('tr', null, headers.map(function (c) {
        return h('th', typeof c === 'string' ? { text: c } : c);
      }))),
      h('tbody', null, rows)
    ]));
  }

  function td(content, cls) {
    var cell = h('td', cls ? { class: cls } : null);
    append(cell, content);
    return cell;
  }

  // charts.js draws an <svg> string. Its root carries an inline style attribute, which the
  // page's Content-Security-Policy (no inline style) would refuse and log; style.css gives
  // .mcpt-chart the same rules, so the attribute is dropped here.
  function chart(opts) {
    var svg = window.McptCharts.line(opts).replace(/^(<svg[^>]*?)\sstyle="[^"]*"/, '$1');
    var box = h('div', { class: 'chart' });
    box.innerHTML = svg;
    return box;
  }

  function debounce(fn, wait) {
    var t = null;
    var wrapped = function () {
      if (t) clearTimeout(t);
      t = setTimeout(function () { t = null; fn(); }, wait);
    };
    wrapped.cancel = function () { if (t) clearTimeout(t); t = null; };
    return wrapped;
  }

  // ---------------------------------------------------------------- the REST API and the token

  function ApiError(status, body, message) {
    this.status = status;
    this.body = body || null;
    this.message = message || (body && body.message) || ('HTTP ' + status);
  }

  var tokenPrompt = null;

  // Asks for the API token (a modal dialog); resolves to the token, or null when cancelled.
  function askToken(refused) {
    if (tokenPrompt) return tokenPrompt;
    var dialog = byId('token-dialog'), input = byId('token-input'), message = byId('token-message');
    message.textContent = refused
      ? 'The orchestrator refused that token. Check api.token (MCP_API_TOKEN) and try again.'
      : 'This orchestrator asks for its API token (api.token) before any change.';
    message.className = refused ? 'error' : '';
    dialog.dataset.refused = refused ? 'true' : 'false';
    input.value = '';
    tokenPrompt = new Promise(function (resolve) {
      function done(value) {
        byId('token-form').removeEventListener('submit', onSubmit);
        byId('token-cancel').removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        tokenPrompt = null;
        resolve(value);
      }
      function onSubmit(e) {
        e.preventDefault();
        var t = input.value.trim();
        if (!t) return;
        sessionStorage.setItem(TOKEN_KEY, t);
        showTokenState();
        done(t);
      }
      function onCancel(e) { if (e) e.preventDefault(); done(null); }
      byId('token-form').addEventListener('submit', onSubmit);
      byId('token-cancel').addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      input.focus();
    });
    return tokenPrompt;
  }

  function showTokenState() {
    byId('token-state').hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  // One JSON call (a body of another `type`, such as application/yaml, goes as the text it
  // is). A 401 on a change asks for the token and retries; other errors reject with an
  // ApiError carrying the server's {error, message, field, errors}.
  function api(method, path, body, type) {
    var headers = { 'Accept': 'application/json' };
    var token = sessionStorage.getItem(TOKEN_KEY);
    var mutating = method !== 'GET';
    if (body !== undefined) headers['Content-Type'] = type || 'application/json';
    if (token && mutating) headers.Authorization = 'Bearer ' + token;
    // A live change records who made it.
    if (mutating) headers['X-Mcpt-Client'] = 'ui';
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : type ? body : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin'
    }).catch(function (e) {
      throw new ApiError(0, null, 'the orchestrator is unreachable (' + e.message + ')');
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { message: text }; }
        if (resp.ok) return data;
        if (resp.status === 401 && mutating) {
          if (token) { sessionStorage.removeItem(TOKEN_KEY); showTokenState(); }
          return askToken(!!token).then(function (t) {
            if (!t) throw new ApiError(401, data, 'not sent: this change needs the API token');
            return api(method, path, body, type);
          });
        }
        throw new ApiError(resp.status, data);
      });
    });
  }

  // ---------------------------------------------------------------- the live event stream

  // One WebSocket for the whole page; views subscribe by event type. It reconnects with
  // backoff; after a reconnect every view refetches its REST state ('reconnect').
  var Live = {
    ws: null,
    state: 'connecting',
    backoff: 500,
    opened: 0,
    handlers: {},
    on: function (type, fn) {
      (Live.handlers[type] = Live.handlers[type] || []).push(fn);
      return function () {
        Live.handlers[type] = (Live.handlers[type] || []).filter(function (f) { return f !== fn; });
      };
    },
    emit: function (type, ev) {
      (Live.handlers[type] || []).slice().forEach(function (fn) {
        try { fn(ev); } catch (e) { console.error('mcpt: a ' + type + ' handler failed', e); }
      });
    },
    setState: function (state, detail) {
      Live.state = state;
      var el = byId('live-state');
      el.dataset.state = state;
      el.textContent = detail || state;
    },
    connect: function () {
      var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/events';
      // The page is of the orchestrator's own origin, which is enough; behind a proxy that
      // rewrites the Host, the token the page holds (if any) opens the stream instead. A
      // browser cannot set headers on a WebSocket, so it goes as a subprotocol (hex, since
      // subprotocol names allow few characters); the server answers 'mcpt.events'.
      var protocols = ['mcpt.events'];
      var token = sessionStorage.getItem(TOKEN_KEY);
      if (token) {
        var hex = Array.prototype.map.call(new TextEncoder().encode(token), function (b) {
          return ('0' + b.toString(16)).slice(-2);
        }).join('');
        protocols.push('mcpt.token.' + hex);
      }
      var ws;
      try { ws = new WebSocket(url, protocols); } catch (e) { Live.retry(); return; }
      Live.ws = ws;
      ws.onmessage = function (m) {
        var ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        if (!ev || typeof ev.type !== 'string') return;
        Live.emit(ev.type, ev);
      };
      ws.onopen = function () {
        Live.backoff = 500;
        Live.setState('live');
        Live.opened += 1;
        // The first connection comes with the views' first fetch; later ones refetch what
        // happened while the stream was down.
        if (Live.opened > 1) Live.emit('reconnect', null);
      };
      ws.onclose = function () {
        if (Live.ws !== ws) return;
        Live.ws = null;
        Live.retry();
      };
    },
    retry: function () {
      var wait = Live.backoff;
      Live.backoff = Math.min(Live.backoff * 2, 10000);
      Live.setState('reconnecting', 'reconnecting in ' + Math.round(wait / 1000) + ' s');
      Live.emit('down', null);
      setTimeout(Live.connect, wait);
    },
    live: function () { return Live.state === 'live'; }
  };

  // Every stats event seen since the page opened, by execution and task: the execution page
  // draws its charts from it (so a run started here is charted from its first second).
  var Seen = {};

  function seenOf(id) {
    return Seen[id] || (Seen[id] = { tasks: {} });
  }

  // One second of a task, by (task_id, second): a live event replaces what was there; a point
  // of the timeline (GET /api/executions/<id>/timeline) or of a poll fills only a second not
  // seen yet (or seen only by a poll), so nothing is counted twice.
  function addStats(ev) {
    var e = seenOf(ev.execution_id);
    var t = e.tasks[ev.task_id] || (e.tasks[ev.task_id] = { name: ev.task, points: {} });
    var had = t.points[ev.second];
    if (ev.source && had && had.source !== 'poll') return;
    t.points[ev.second] = ev;
    t.last = !t.last || ev.second >= t.last.second ? ev : t.last;
  }
  Live.on('stats', addStats);

  // ---------------------------------------------------------------- the router

  var current = null;

  function route() {
    var hash = location.hash.replace(/^#\/?/, '');
    var parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
    var view, nav;
    if (parts[0] === 'executions' && parts[1]) { view = Mcpt.views.execution(parts[1]); nav = 'executions'; }
    else if (parts[0] === 'executions') { view = executionsView(); nav = 'executions'; }
    else if (parts[0] === 'new') { view = Mcpt.views.new(); nav = 'new'; }
    else if (parts[0] === 'alerts') { view = alertsView(); nav = 'alerts'; }
    else { view = clusterView(); nav = 'cluster'; }
    if (current && current.destroy) current.destroy();
    current = view;
    document.querySelectorAll('[data-nav]').forEach(function (a) {
      a.classList.toggle('active', a.dataset.nav === nav);
    });
    var main = clear(byId('view'));
    main.dataset.view = nav;
    main.appendChild(view.el);
    window.scrollTo(0, 0);
  }

  // The common parts of a view: subscriptions and timers undone on leave, an error banner.
  function View(title) {
    var self = this;
    this.subs = [];
    this.timers = [];
    this.el = h('section', { class: 'view' });
    this.banner = h('div', { class: 'banner error', hidden: true });
    if (title) this.el.appendChild(h('h1', { text: title }));
    this.el.appendChild(this.banner);
    this.on = function (type, fn) { self.subs.push(Live.on(type, fn)); };
    this.every = function (msWait, fn) { self.timers.push(setInterval(fn, msWait)); };
    this.fail = function (e) {
      self.banner.hidden = false;
      self.banner.textContent = e && e.message ? e.message : String(e);
    };
    this.ok = function () { self.banner.hidden = true; };
    this.destroy = function () {
      self.subs.forEach(function (u) { u(); });
      self.timers.forEach(clearInterval);
      self.destroyed = true;
      if (self.onDestroy) self.onDestroy();
    };
  }

  // ---------------------------------------------------------------- cluster

  function clusterView() {
    var v = new View('Cluster');
    var cards = h('div', { class: 'cards' });
    var nodesBox = h('div');
    var metricsBox = h('div', { id: 'custom-metrics' });
    var alertsBox = h('div');
    append(v.el, [
      cards,
      h('section', { class: 'panel' }, [h('h2', { text: 'Nodes' }), nodesBox]),
      h('section', { class: 'panel' }, [h('h2', { text: 'Custom metrics' }), metricsBox]),
      h('section', { class: 'panel' }, [h('h2', { text: 'Active alerts' }), alertsBox])
    ]);

    function refresh() {
      return Promise.all([
        api('GET', '/api/nodes'),
        api('GET', '/api/health'),
        api('GET', '/api/alerts?active=true')
      ]).then(function (r) {
        if (v.destroyed) return;
        v.ok();
        render(r[0].nodes || [], r[1] || {}, r[2].alerts || []);
        setAlertCount(r[2].alerts || []);
      }).catch(v.fail);
    }

    function card(label, value, sub, cls) {
      return h('div', { class: 'card' + (cls ? ' ' + cls : '') }, [
        h('div', { class: 'label', text: label }),
        h('div', { class: 'value' }, value),
        sub ? h('div', { class: 'sub', text: sub }) : null
      ]);
    }

    function render(nodes, health, alerts) {
      var c = health.cluster || {};
      var n = health.nodes || {};
      var ex = health.executions || {};
      clear(cards);
      append(cards, [
        card('Cluster health', badge(c.status || 'unknown', 'health'),
          c.status ? (c.healthy + ' healthy · ' + c.warning + ' warning · ' + c.failed + ' failed') : 'health monitor not answering'),
        card('Nodes connected', num(n.connected), num(n.disconnected) + ' disconnected · ' + num(n.failed) + ' failed' + (n.left ? ' · ' + num(n.left) + ' left' : '')),
        card('Average health score', finite(c.average_score) && nodes.length ? num(c.average_score, 0) : '–', 'out of 100'),
        card('Executions', num(ex.running) + ' running', num(ex.pending) + ' pending'),
        card('Active alerts', num(alerts.length), alerts.length ? 'see below' : 'none', alerts.length ? 'alerting' : '')
      ]);

      clear(nodesBox);
      if (!nodes.length) {
        nodesBox.appendChild(h('p', { class: 'empty', text: 'No node has joined yet. Start one with: mcpt node --orchestrator <this address>' }));
      } else {
        nodesBox.appendChild(table(
          ['Node', 'Link', 'Health', 'Score', 'CPU', 'Memory', 'Disk', 'Location', 'Capabilities', 'Capacity', 'Last heard'],
          nodes.map(function (node) {
            var hl = node.health || {};
            var cap = node.capacity || {};
            return h('tr', { 'data-node': node.node_id }, [
              td([h('strong', { text: node.node_id }), h('div', { class: 'sub mono', text: node.rest_addr || '' })]),
              td(badge(node.state, 'link')),
              td(badge(hl.status || 'unknown', 'health')),
              td(finite(hl.score) ? [bar(hl.score, 'health score', 'score'), ' ', num(hl.score, 0)] : '–', 'nowrap'),
              td(finite(hl.cpu_percent) ? [bar(hl.cpu_percent), ' ', pct(hl.cpu_percent)] : '–', 'nowrap'),
              td(finite(hl.memory_percent) ? [bar(hl.memory_percent), ' ', pct(hl.memory_percent)] : '–', 'nowrap'),
              td(finite(hl.disk_percent) ? [bar(hl.disk_percent), ' ', pct(hl.disk_percent)] : '–', 'nowrap'),
              td(node.location || '–'),
              td((node.capabilities || []).map(function (c) { return h('span', { class: 'chip', text: c }); })),
              td([num(cap.cpu_cores) + ' cores · ' + num(cap.workers) + ' workers', h('div', { text: num(cap.max_concurrent_requests) + ' in flight' })], 'sub'),
              td(ago(node.last_heard_ms), 'nowrap')
            ]);
          })
        ));
      }

      clear(metricsBox);
      metricsBox.appendChild(metricsTable(nodes));

      clear(alertsBox);
      alertsBox.appendChild(alertsTable(alerts, 'No active alert.'));
    }

    var soon = debounce(refresh, 250);
    ['node_joined', 'node_left', 'node_failed', 'node_health', 'alert_raised', 'alert_cleared', 'execution_state', 'reconnect']
      .forEach(function (t) { v.on(t, soon); });
    // Usage figures change with health reports, which have no event of their own.
    v.every(5000, refresh);
    refresh();
    return v;
  }

  // Each node's custom metrics (pushed to the node, or read by its prometheus checks) as its
  // latest health report judged them: value and unit, status, and what the check said.
  function metricsTable(nodes) {
    var rows = [];
    nodes.forEach(function (node) {
      ((node.health || {}).custom_metric_checks || []).forEach(function (c) {
        rows.push(h('tr', { 'data-metric': node.node_id + '/' + c.check_id, 'data-status': c.status }, [
          td(node.node_id),
          td([c.name, h('div', { class: 'sub mono', text: c.check_id })]),
          td(finite(c.value) ? num(c.value, 3) + (c.unit ? ' ' + c.unit : '') : '–', 'num'),
          td(badge(c.status, 'health')),
          td(c.message || '', 'sub')
        ]));
      });
    });
    if (!rows.length) {
      return h('p', { class: 'empty', text: 'No custom metric: push one to a node (POST /health/metrics) or give it a prometheus check (health_monitoring.checks).' });
    }
    return table(['Node', 'Metric', N('Value'), 'Status', 'Message'], rows);
  }

  function alertsTable(alerts, empty) {
    if (!alerts.length) return h('p', { class: 'empty', text: empty });
    return table(['Severity', 'Node', 'Check', 'Message', 'Raised', N('Failures'), 'Cleared'],
      alerts.map(function (a) {
        return h('tr', { 'data-alert': a.alert_id }, [
          td(badge(a.severity, 'health')),
          td(h('strong', { text: a.node_id })),
          td([a.name || a.check_id, h('div', { class: 'sub mono', text: a.check_id })]),
          td(a.message, 'message'),
          td(clock(a.raised_at_ms), 'nowrap'),
          td(num(a.consecutive_failures), 'num'),
          td(a.cleared_at_ms ? clock(a.cleared_at_ms) : badge('active', 'health'), 'nowrap')
        ]);
      }));
  }

  function setAlertCount(active) {
    var el = byId('alert-count');
    el.hidden = !active.length;
    el.textContent = String(active.length);
  }

  function refreshAlertCount() {
    api('GET', '/api/alerts?active=true').then(function (r) { setAlertCount(r.alerts || []); }).catch(function () {});
  }

  // ---------------------------------------------------------------- alerts

  function alertsView() {
    var v = new View('Alerts');
    var activeOnly = h('input', { type: 'checkbox', id: 'alerts-active-only' });
    var box = h('div');
    append(v.el, [
      h('div', { class: 'toolbar' }, h('label', null, [activeOnly, ' active only'])),
      h('section', { class: 'panel' }, box)
    ]);
    function refresh() {
      var path = '/api/alerts' + (activeOnly.checked ? '?active=true' : '');
      return api('GET', path).then(function (r) {
        if (v.destroyed) return;
        v.ok();
        var alerts = r.alerts || [];
        clear(box).appendChild(alertsTable(alerts, activeOnly.checked ? 'No active alert.' : 'No alert raised or recently cleared.'));
        if (!activeOnly.checked) setAlertCount(alerts.filter(function (a) { return !a.cleared_at_ms; }));
      }).catch(v.fail);
    }
    activeOnly.addEventListener('change', refresh);
    var soon = debounce(refresh, 250);
    ['alert_raised', 'alert_cleared', 'reconnect'].forEach(function (t) { v.on(t, soon); });
    refresh();
    return v;
  }

  // ---------------------------------------------------------------- executions list

  // An execution view's totals: the report's summary when there is one, else the tasks'
  // figures. The rate is the server's achieved_rps (completed over the seconds the load ran,
  // the drain excluded), never worked out here.
  function totalsOf(x) {
    if (x.summary) {
      return { completed: x.summary.total_requests, errors: (x.summary.errors || {}).total, rps: x.summary.achieved_rps };
    }
    var t = { completed: 0, errors: 0, rps: null };
    (x.tasks || []).forEach(function (task) {
      t.completed += task.completed || 0;
      t.errors += task.errors || 0;
    });
    if (x.state !== 'pending' && finite(x.achieved_rps)) t.rps = x.achieved_rps;
    return t;
  }

  function executionsView() {
    var v = new View(null);
    v.el.appendChild(h('div', { class: 'titlebar' }, [
      h('h1', { text: 'Executions' }),
      h('a', { class: 'button primary', href: '#/new', text: 'New execution' })
    ]));
    var box = h('section', { class: 'panel' });
    v.el.appendChild(box);
    var rows = {};

    function refresh() {
      return api('GET', '/api/executions').then(function (r) {
        if (v.destroyed) return;
        v.ok();
        render(r.executions || []);
      }).catch(v.fail);
    }

    function render(list) {
      clear(box);
      rows = {};
      if (!list.length) {
        box.appendChild(h('p', { class: 'empty' }, ['No execution yet. ', h('a', { href: '#/new', text: 'Start one.' })]));
        return;
      }
      box.appendChild(table(['State', 'Name', 'ID', 'Created', 'Ran for', 'Progress', N('Completed'), N('Errors'), { text: 'req/s', class: 'num', title: 'average once finished; the latest second while running' }],
        list.map(function (x) {
          var t = totalsOf(x);
          var ran = x.started_at_ms ? ((x.finished_at_ms || Date.now()) - x.started_at_ms) / 1000 : null;
          var cells = {
            state: td(badge(x.state)),
            progress: td([bar(x.progress_percent, 'progress', 'progress'), ' ', pct(x.progress_percent)], 'nowrap'),
            completed: td(num(t.completed), 'num'),
            errors: td(num(t.errors), 'num' + (t.errors ? ' bad' : ''))
          };
          rows[x.execution_id] = { cells: cells, totals: {} };
          var link = '#/executions/' + encodeURIComponent(x.execution_id);
          return h('tr', { 'data-execution': x.execution_id, class: 'clickable', onclick: function (e) {
            if (e.target.tagName !== 'A') location.hash = link;
          } }, [
            cells.state,
            td(h('a', { href: link, text: x.name || '(unnamed)' })),
            td(x.execution_id.slice(0, 8), 'mono sub'),
            td(clock(x.created_at_ms), 'nowrap'),
            td(ran === null ? '–' : seconds(ran), 'nowrap'),
            cells.progress,
            cells.completed,
            cells.errors,
            td(rps(t.rps), 'num')
          ]);
        })));
    }

    v.on('stats', function (ev) {
      var row = rows[ev.execution_id];
      if (!row) return;
      row.totals[ev.task_id] = ev;
      var c = 0, e = 0;
      Object.keys(row.totals).forEach(function (k) { c += row.totals[k].total_completed; e += row.totals[k].total_errors; });
      row.cells.completed.textContent = num(c);
      row.cells.errors.textContent = num(e);
    });
    v.on('execution_state', function (ev) {
      var row = rows[ev.execution_id];
      if (row) clear(row.cells.state).appendChild(badge(ev.state));
      soon();
    });
    var soon = debounce(refresh, 300);
    v.on('reconnect', soon);
    // Progress has no event of its own; without the stream, this is also the live view.
    v.every(3000, refresh);
    refresh();
    return v;
  }

  // ---------------------------------------------------------------- start

  function start() {
    byId('token-forget').addEventListener('click', function () {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
    });
    showTokenState();
    Live.on('alert_raised', refreshAlertCount);
    Live.on('alert_cleared', refreshAlertCount);
    Live.connect();
    refreshAlertCount();
    window.addEventListener('hashchange', route);
    if (!location.hash) location.replace('#/cluster');
    route();
  }

  // What form.js and execution.js use. Deferred scripts all run before DOMContentLoaded, so
  // their views are registered when the router first runs.
  var Mcpt = window.Mcpt = {
    h: h, append: append, clear: clear, byId: byId, finite: finite, num: num, rps: rps, ms: ms,
    pct: pct, clock: clock, seconds: seconds, badge: badge, bar: bar, table: table, td: td, N: N,
    chart: chart, debounce: debounce, api: api, ApiError: ApiError, Live: Live, seenOf: seenOf,
    addStats: addStats, View: View, TERMINAL: TERMINAL, views: {}
  };

  document.addEventListener('DOMContentLoaded', start);
})();
