// mcpt web UI: hash-routed views over the orchestrator's REST API (/api/...) and its live event
// stream (the WebSocket /api/events, contract: schemas/events.schema.json). Plain browser
// JavaScript, no dependencies; charts come from charts.js (McptCharts.line).
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

  // A horizontal bar for a 0..100 figure: a usage (high is hot) or, with `score`, a health
  // score (low is hot).
  function bar(value, title, score) {
    var outer = h('span', { class: 'bar', title: title || '' });
    var inner = h('span', { class: 'fill' });
    var v = finite(value) ? Math.max(0, Math.min(100, value)) : 0;
    inner.style.width = v + '%';
    var heat = score ? 100 - v : v;
    if (heat >= (score ? 50 : 90)) inner.classList.add('hot');
    else if (heat >= (score ? 25 : 75)) inner.classList.add('warm');
    outer.appendChild(inner);
    return outer;
  }

  // A numeric column's header (right-aligned like its cells).
  function N(text) { return { text: text, class: 'num' }; }

  function table(headers, rows, attrs) {
    return h('table', attrs || { class: 'grid' }, [
      h('thead', null, h('tr', null, headers.map(function (c) {
        return h('th', typeof c === 'string' ? { text: c } : c);
      }))),
      h('tbody', null, rows)
    ]);
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

  // One JSON call. A 401 on a change asks for the token and retries; other errors reject with
  // an ApiError carrying the server's {error, message, field, errors}.
  function api(method, path, body) {
    var headers = { 'Accept': 'application/json' };
    var token = sessionStorage.getItem(TOKEN_KEY);
    var mutating = method !== 'GET';
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token && mutating) headers.Authorization = 'Bearer ' + token;
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
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
            return api(method, path, body);
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
      var ws;
      try { ws = new WebSocket(url); } catch (e) { Live.retry(); return; }
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

  Live.on('stats', function (ev) {
    var e = seenOf(ev.execution_id);
    var t = e.tasks[ev.task_id] || (e.tasks[ev.task_id] = { name: ev.task, points: {} });
    t.points[ev.second] = ev;
    t.last = !t.last || ev.second >= t.last.second ? ev : t.last;
  });

  // ---------------------------------------------------------------- the router

  var current = null;

  function route() {
    var hash = location.hash.replace(/^#\/?/, '');
    var parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
    var view, nav;
    if (parts[0] === 'executions' && parts[1]) { view = executionView(parts[1]); nav = 'executions'; }
    else if (parts[0] === 'executions') { view = executionsView(); nav = 'executions'; }
    else if (parts[0] === 'new') { view = newView(); nav = 'new'; }
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
    var alertsBox = h('div');
    append(v.el, [
      cards,
      h('section', { class: 'panel' }, [h('h2', { text: 'Nodes' }), nodesBox]),
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
        card('Nodes connected', num(n.connected), num(n.disconnected) + ' disconnected · ' + num(n.failed) + ' failed'),
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
              td(finite(hl.score) ? [bar(hl.score, 'health score', true), ' ', num(hl.score, 0)] : '–', 'nowrap'),
              td(finite(hl.cpu_percent) ? [bar(hl.cpu_percent), ' ', pct(hl.cpu_percent)] : '–', 'nowrap'),
              td(finite(hl.memory_percent) ? [bar(hl.memory_percent), ' ', pct(hl.memory_percent)] : '–', 'nowrap'),
              td(finite(hl.disk_percent) ? [bar(hl.disk_percent), ' ', pct(hl.disk_percent)] : '–', 'nowrap'),
              td(node.location || '–'),
              td((node.capabilities || []).map(function (c) { return h('span', { class: 'chip', text: c }); })),
              td([num(cap.cpu_cores) + ' cores · ' + num(cap.workers) + ' workers', h('div', { text: num(cap.max_concurrent_requests) + ' requests in flight' })], 'sub nowrap'),
              td(ago(node.last_heard_ms), 'nowrap')
            ]);
          })
        ));
      }

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

  // An execution view's totals: the report's summary when finished, else the tasks' figures.
  function totalsOf(x) {
    if (x.summary) {
      return { completed: x.summary.total_requests, errors: (x.summary.errors || {}).total, rps: x.summary.achieved_rps };
    }
    var t = { completed: 0, errors: 0, rps: null };
    (x.tasks || []).forEach(function (task) {
      t.completed += task.completed || 0;
      t.errors += task.errors || 0;
    });
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
      box.appendChild(table(['State', 'Name', 'ID', 'Created', 'Ran for', 'Progress', N('Completed'), N('Errors'), N('Avg req/s')],
        list.map(function (x) {
          var t = totalsOf(x);
          var ran = x.started_at_ms ? ((x.finished_at_ms || Date.now()) - x.started_at_ms) / 1000 : null;
          var cells = {
            state: td(badge(x.state)),
            progress: td([bar(x.progress_percent), ' ', pct(x.progress_percent)], 'nowrap'),
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

  // ---------------------------------------------------------------- new execution

  var PATTERNS = {
    constant: { label: 'Constant', base: 'Rate (req/s)', peak: null, opts: [] },
    ramp_up: { label: 'Ramp up', base: 'Start rate (req/s)', peak: 'Peak rate (req/s)', opts: ['ramp_duration'] },
    ramp_down: { label: 'Ramp down', base: 'End rate (req/s)', peak: 'Start rate (req/s)', opts: ['ramp_duration'] },
    spike: { label: 'Spike', base: 'Base rate (req/s)', peak: 'Spike rate (req/s)', opts: ['spike_at', 'spike_duration'] },
    wave: { label: 'Wave', base: 'Low rate (req/s)', peak: 'High rate (req/s)', opts: ['wave_period'] },
    random: { label: 'Random', base: 'Lowest rate (req/s)', peak: 'Highest rate (req/s)', opts: ['random_step'] },
    burst: { label: 'Burst', base: 'Base rate (req/s)', peak: 'Burst rate (req/s)', opts: ['burst_interval', 'burst_duration'] },
    stages: { label: 'Stages', base: 'Starting rate (req/s, optional)', peak: null, opts: [] }
  };

  var OPTION_LABELS = {
    ramp_duration: ['Ramp over', 'default: the whole duration'],
    spike_at: ['Spike at', 'default: half the duration'],
    spike_duration: ['Spike length', 'default: a tenth of the duration, at least 1 s'],
    wave_period: ['Wave period', 'default: 60s'],
    random_step: ['New rate every', 'default: 5s'],
    burst_interval: ['Burst every', 'default: 10s'],
    burst_duration: ['Burst length', 'default: 1s']
  };

  var FORM_KEY = 'mcpt.form';

  function newView() {
    var v = new View('New execution');
    var P = 'tasks[0].parameters.';
    var saved = {};
    try { saved = JSON.parse(sessionStorage.getItem(FORM_KEY) || '{}') || {}; } catch (e) { saved = {}; }
    var fields = {};   // error path -> the element after which its error shows
    var errors = [];

    function input(id, attrs) {
      var a = { id: id, name: id, type: 'text', autocomplete: 'off' };
      Object.keys(attrs || {}).forEach(function (k) { a[k] = attrs[k]; });
      var el = h('input', a);
      if (saved[id] !== undefined) el.value = saved[id];
      return el;
    }

    function select(id, options, value) {
      var el = h('select', { id: id, name: id }, options.map(function (o) {
        return h('option', { value: o[0], text: o[1] });
      }));
      el.value = saved[id] !== undefined ? saved[id] : value;
      return el;
    }

    // A labelled field; `path` names it in the server's 422 errors.
    function field(label, control, path, hint, cls) {
      var wrap = h('div', { class: 'field' + (cls ? ' ' + cls : ''), 'data-field': path || null }, [
        h('label', { for: control.id, text: label }), control,
        hint ? h('div', { class: 'hint', text: hint }) : null
      ]);
      if (path) fields[path] = wrap;
      return wrap;
    }

    // Targets.
    var targetsBox = h('div', { class: 'targets' });
    var targetRows = [];
    function addTarget(t) {
      var i = targetRows.length;
      var method = h('select', { class: 'f-method', id: 'f-target-method-' + i, 'aria-label': 'method' },
        ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'].map(function (m) { return h('option', { value: m, text: m }); }));
      method.value = (t && t.method) || 'GET';
      var url = h('input', { class: 'f-url', id: 'f-target-url-' + i, type: 'url', placeholder: 'http://127.0.0.1:8089/', 'aria-label': 'URL', autocomplete: 'off' });
      url.value = (t && t.url) || '';
      var row = h('div', { class: 'target-row', 'data-field': P + 'targets[' + i + ']' }, [method, url]);
      var remove = h('button', { type: 'button', class: 'link', title: 'remove this target', text: '×', onclick: function () {
        targetRows.splice(targetRows.indexOf(entry), 1);
        targetsBox.removeChild(row);
        changed();
      } });
      row.appendChild(remove);
      var entry = { row: row, method: method, url: url };
      targetRows.push(entry);
      targetsBox.appendChild(row);
      fields[P + 'targets[' + i + ']'] = row;
      fields[P + 'targets[' + i + '].url'] = row;
      fields[P + 'targets[' + i + '].method'] = row;
    }
    (saved.targets && saved.targets.length ? saved.targets : [{}]).forEach(addTarget);

    var name = input('f-name', { placeholder: 'checkout-ramp' });
    if (!name.value) name.value = 'ui-run';
    var model = select('f-model', [['open', 'Open'], ['closed', 'Closed']], 'open');
    var pattern = select('f-pattern', Object.keys(PATTERNS).map(function (k) { return [k, PATTERNS[k].label]; }), 'constant');
    var base = input('f-base-rps', { inputmode: 'decimal', placeholder: '50' });
    var peak = input('f-peak-rps', { inputmode: 'decimal', placeholder: '200' });
    var duration = input('f-duration', { placeholder: '30s' });
    if (!duration.value) duration.value = '30s';
    if (!base.value && saved['f-base-rps'] === undefined) base.value = '50';
    var users = input('f-users', { inputmode: 'numeric', placeholder: '100' });
    var thinkTime = input('f-think-time', { placeholder: '0s' });
    var arrivals = select('f-arrivals', [['uniform', 'Uniform'], ['poisson', 'Poisson']], 'uniform');
    var opts = {};
    Object.keys(OPTION_LABELS).forEach(function (k) {
      opts[k] = input('f-' + k.replace(/_/g, '-'), { placeholder: OPTION_LABELS[k][1].replace('default: ', '') });
    });

    // Stages.
    var stagesBox = h('div', { class: 'stages' });
    var stageRows = [];
    function addStage(s) {
      var i = stageRows.length;
      var d = h('input', { id: 'f-stage-duration-' + i, placeholder: '30s', 'aria-label': 'stage duration', autocomplete: 'off' });
      var r = h('input', { id: 'f-stage-rps-' + i, placeholder: '100', inputmode: 'decimal', 'aria-label': 'stage target rate', autocomplete: 'off' });
      d.value = (s && s.duration) || '';
      r.value = s && s.target_rps !== undefined ? s.target_rps : '';
      var row = h('div', { class: 'stage-row' }, [h('span', { class: 'sub', text: 'for' }), d, h('span', { class: 'sub', text: 'move to' }), r, h('span', { class: 'sub', text: 'req/s' })]);
      var remove = h('button', { type: 'button', class: 'link', text: '×', title: 'remove this stage', onclick: function () {
        stageRows.splice(stageRows.indexOf(entry), 1);
        stagesBox.removeChild(row);
        changed();
      } });
      row.appendChild(remove);
      var entry = { row: row, duration: d, rps: r };
      stageRows.push(entry);
      stagesBox.appendChild(row);
      fields[P + 'stages[' + i + ']'] = row;
      fields[P + 'stages[' + i + '].duration'] = row;
      fields[P + 'stages[' + i + '].target_rps'] = row;
    }
    (saved.stages && saved.stages.length ? saved.stages : [{ duration: '10s', target_rps: 100 }, { duration: '20s', target_rps: 100 }]).forEach(addStage);

    var general = h('div', { class: 'banner error', id: 'form-error', hidden: true });
    var submit = h('button', { type: 'submit', class: 'primary', id: 'f-submit', text: 'Start execution' });

    var baseField = field('Rate (req/s)', base, P + 'base_rps');
    var peakField = field('Peak rate (req/s)', peak, P + 'peak_rps');
    var optFields = {};
    Object.keys(opts).forEach(function (k) {
      optFields[k] = field(OPTION_LABELS[k][0], opts[k], P + k, OPTION_LABELS[k][1]);
    });
    var stagesField = h('div', { class: 'field wide', 'data-field': P + 'stages' }, [
      h('label', { text: 'Stages' }), stagesBox,
      h('button', { type: 'button', class: 'link', text: '+ stage', onclick: function () { addStage(); changed(); } })
    ]);
    fields[P + 'stages'] = stagesField;
    var durationField = field('Duration', duration, P + 'duration', 'e.g. 30s, 5m, 1h');
    var usersField = field('Users', users, P + 'concurrent_users', 'max in flight (default 100)');
    var thinkField = field('Think time', thinkTime, P + 'think_time', 'between a user\'s requests');
    var arrivalsField = field('Arrivals', arrivals, P + 'arrivals');
    var patternField = field('Pattern', pattern, P + 'pattern');
    var modelField = field('Model', model, P + 'model', 'open: arrivals at planned times');

    var targetsField = h('div', { class: 'field wide', 'data-field': P + 'targets' }, [
      h('label', { text: 'Targets' }), targetsBox,
      h('button', { type: 'button', class: 'link', text: '+ target', onclick: function () { addTarget(); changed(); } })
    ]);
    fields[P + 'targets'] = targetsField;

    var form = h('form', { class: 'panel form', id: 'new-execution', novalidate: true }, [
      h('div', { class: 'row' }, [field('Name', name, 'name', null, 'wide')]),
      h('div', { class: 'row' }, [targetsField]),
      h('div', { class: 'row' }, [modelField, patternField, arrivalsField]),
      h('div', { class: 'row' }, [baseField, peakField, durationField, usersField, thinkField]),
      h('div', { class: 'row' }, Object.keys(optFields).map(function (k) { return optFields[k]; })),
      h('div', { class: 'row' }, [stagesField]),
      general,
      h('div', { class: 'actions' }, [submit, h('span', { class: 'hint', text: 'Posts to /api/executions, then opens the execution.' })])
    ]);
    fields[''] = general;

    var previewChart = h('div', { id: 'preview-chart', class: 'preview-chart' });
    var previewInfo = h('div', { id: 'preview-info', class: 'sub' });
    var jsonBox = h('pre', { id: 'preview-json', class: 'json' });
    var side = h('div', { class: 'side' }, [
      h('section', { class: 'panel' }, [h('h2', { text: 'Planned rate' }), previewChart, previewInfo]),
      h('section', { class: 'panel' }, [h('details', null, [h('summary', { text: 'Request body' }), jsonBox])])
    ]);
    v.el.appendChild(h('div', { class: 'split' }, [form, side]));

    // Shows the fields that apply to the chosen model and pattern.
    function layout() {
      var closed = model.value === 'closed';
      var p = PATTERNS[pattern.value] || PATTERNS.constant;
      pattern.disabled = closed;
      if (closed) pattern.value = 'constant';
      baseField.hidden = closed;
      baseField.querySelector('label').textContent = p.base;
      peakField.hidden = closed || !p.peak;
      if (p.peak) peakField.querySelector('label').textContent = p.peak;
      Object.keys(optFields).forEach(function (k) { optFields[k].hidden = closed || p.opts.indexOf(k) < 0; });
      optFields.ramp_duration.parentNode.hidden = closed || !p.opts.length;
      stagesField.hidden = closed || pattern.value !== 'stages';
      stagesField.parentNode.hidden = stagesField.hidden;
      durationField.hidden = !closed && pattern.value === 'stages';
      arrivalsField.hidden = closed;
      thinkField.hidden = !closed;
      usersField.querySelector('.hint').textContent = closed ? 'users looping' : 'max in flight (default 100)';
      modelField.querySelector('.hint').textContent = closed ? 'closed: users loop request, think' : 'open: arrivals at planned times';
    }

    // A number when the text is one; the text itself otherwise, so the server names the error.
    function numeric(text) {
      var t = text.trim();
      return t !== '' && isFinite(Number(t)) ? Number(t) : t;
    }

    function body() {
      var closed = model.value === 'closed';
      var p = {};
      p.targets = targetRows.map(function (t) { return { url: t.url.value.trim(), method: t.method.value }; });
      if (closed) p.model = 'closed';
      if (!closed && pattern.value !== 'constant' && pattern.value !== 'stages') p.pattern = pattern.value;
      if (!closed && pattern.value === 'stages') {
        p.pattern = 'stages';
        p.stages = stageRows.map(function (s) { return { duration: numeric(s.duration.value), target_rps: numeric(s.rps.value) }; });
      } else {
        p.duration = numeric(duration.value);
      }
      if (!closed && (base.value.trim() !== '' || pattern.value !== 'stages')) p.base_rps = numeric(base.value);
      if (!closed && PATTERNS[pattern.value].peak) p.peak_rps = numeric(peak.value);
      if (!closed) {
        PATTERNS[pattern.value].opts.forEach(function (k) {
          if (opts[k].value.trim() !== '') p[k] = numeric(opts[k].value);
        });
        if (arrivals.value !== 'uniform') p.arrivals = arrivals.value;
      }
      if (users.value.trim() !== '') p.concurrent_users = numeric(users.value);
      if (closed && thinkTime.value.trim() !== '') p.think_time = numeric(thinkTime.value);
      return { name: name.value.trim() || 'ui-run', tasks: [{ type: 'load_test', parameters: p }] };
    }

    function save() {
      var s = {};
      [name, model, pattern, base, peak, duration, users, thinkTime, arrivals].forEach(function (el) { s[el.id] = el.value; });
      Object.keys(opts).forEach(function (k) { s[opts[k].id] = opts[k].value; });
      s.targets = targetRows.map(function (t) { return { url: t.url.value, method: t.method.value }; });
      s.stages = stageRows.map(function (r) { return { duration: r.duration.value, target_rps: r.rps.value }; });
      try { sessionStorage.setItem(FORM_KEY, JSON.stringify(s)); } catch (e) { /* storage full: not kept */ }
    }

    function clearErrors() {
      errors.forEach(function (el) { if (el.parentNode) el.parentNode.removeChild(el); });
      errors = [];
      form.querySelectorAll('.invalid').forEach(function (el) { el.classList.remove('invalid'); });
      general.hidden = true;
      general.textContent = '';
    }

    // `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ''.
    function parentPath(p) {
      var q = p.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
      return q === p ? '' : q;
    }

    // The server's errors, each under the field it names (or its nearest named parent).
    function showErrors(err) {
      clearErrors();
      var list = (err.body && err.body.errors) || [{ field: (err.body && err.body.field) || '', message: err.message }];
      list.forEach(function (e) {
        var path = e.field || '';
        var at = path;
        while (at && !fields[at]) at = parentPath(at);
        var where = fields[at];
        if (!where || where === general || where.hidden) {
          general.hidden = false;
          general.appendChild(h('div', null, [path ? h('code', { text: path }) : null, path ? ': ' : null, e.message]));
          return;
        }
        where.classList.add('invalid');
        var msg = h('div', { class: 'field-error', 'data-error-for': path, text: (at === path ? '' : path.slice(at.length).replace(/^\./, '') + ': ') + e.message });
        where.appendChild(msg);
        errors.push(msg);
      });
    }

    // Errors show once the user has touched the form (a fresh form lacks its target URL).
    var touched = targetRows.some(function (t) { return t.url.value.trim() !== ''; });
    var seq = 0;
    function preview() {
      var mine = ++seq;
      var b = body();
      jsonBox.textContent = JSON.stringify(b, null, 2);
      api('POST', '/api/executions/preview', b).then(function (r) {
        if (mine !== seq || v.destroyed) return;
        clearErrors();
        drawPreview(r);
      }).catch(function (e) {
        if (mine !== seq || v.destroyed) return;
        previewChart.classList.add('stale');
        if (!touched) {
          previewInfo.textContent = 'Enter a target URL to see the planned rate.';
        } else if (e.status === 422 || e.status === 400) {
          showErrors(e);
          previewInfo.textContent = 'Fix the marked fields to see the plan.';
        } else {
          previewInfo.textContent = 'No preview: ' + e.message;
        }
      });
    }

    function drawPreview(r) {
      previewChart.classList.remove('stale');
      var tasks = r.tasks || [];
      var n = 0;
      tasks.forEach(function (t) { n = Math.max(n, t.planned_rps.length); });
      var x = [];
      for (var i = 0; i < n; i++) x.push(i);
      var closed = tasks.length && tasks.every(function (t) { return t.model === 'closed'; });
      clear(previewChart).appendChild(chart({
        title: closed ? 'Closed model: no planned rate' : 'Planned requests per second',
        unit: 'req/s',
        x: x,
        series: tasks.map(function (t) { return { name: t.name, values: t.planned_rps }; }),
        width: 520,
        height: 230
      }));
      var planned = 0, peakRate = 0;
      tasks.forEach(function (t) {
        planned += t.planned_requests || 0;
        t.planned_rps.forEach(function (v) { peakRate = Math.max(peakRate, v); });
      });
      previewInfo.textContent = closed
        ? 'Users loop for ' + seconds(r.duration_s) + ' as fast as responses come back.'
        : num(planned) + ' requests planned over ' + seconds(r.duration_s) + ' · peak ' + rps(peakRate) + ' req/s';
    }

    var changed = debounce(function () { layout(); save(); preview(); }, 250);
    function edited() { touched = true; changed(); }
    form.addEventListener('input', edited);
    form.addEventListener('change', edited);
    v.onDestroy = function () { changed.cancel(); };

    form.addEventListener('submit', function (e) {
      e.preventDefault();
      changed.cancel();
      touched = true;
      layout();
      save();
      var b = body();
      submit.disabled = true;
      submit.textContent = 'Starting…';
      api('POST', '/api/executions', b).then(function (r) {
        location.hash = '#/executions/' + encodeURIComponent(r.execution_id);
      }).catch(function (err) {
        if (v.destroyed) return;
        submit.disabled = false;
        submit.textContent = 'Start execution';
        if (err.status === 422 || err.status === 400) showErrors(err);
        else {
          clearErrors();
          general.hidden = false;
          general.textContent = 'Not started: ' + err.message;
        }
      });
    });

    layout();
    preview();
    return v;
  }

  // ---------------------------------------------------------------- one execution

  function executionView(id) {
    var v = new View(null);
    var title = h('h1', { id: 'exec-name', text: 'Execution' });
    var state = h('span', { id: 'exec-state', 'data-state': '' });
    var meta = h('div', { class: 'meta', id: 'exec-meta' });
    var reason = h('div', { class: 'banner', id: 'exec-reason', hidden: true });
    var progressBar = h('div', { class: 'progress' }, h('div', { class: 'fill', id: 'exec-progress' }));
    var cancel = h('button', { type: 'button', id: 'cancel', class: 'danger', text: 'Cancel execution', hidden: true });
    var links = h('div', { class: 'links', id: 'report-links', hidden: true }, [
      h('a', { href: '/api/executions/' + encodeURIComponent(id) + '/report.html', id: 'report-html-link', target: '_blank', rel: 'noopener', text: 'HTML report' }),
      h('a', { href: '/api/executions/' + encodeURIComponent(id) + '/report', target: '_blank', rel: 'noopener', text: 'JSON report' })
    ]);

    function figure(id, label, big) {
      var value = h('div', { class: 'value', id: id, text: '–' });
      var box = h('div', { class: 'figure' + (big ? ' big' : '') }, [value, h('div', { class: 'label', text: label })]);
      return { box: box, value: value, label: box.querySelector('.label') };
    }
    var F = {
      rps: figure('live-rps', 'achieved req/s (last second)', true),
      planned: figure('planned-rps', 'planned req/s'),
      p50: figure('p50', 'p50 latency'),
      p95: figure('p95', 'p95 latency'),
      p99: figure('p99', 'p99 latency'),
      errs: figure('errors-now', 'errors/s'),
      completed: figure('total-completed', 'completed'),
      errors: figure('total-errors', 'errors'),
      elapsed: figure('elapsed', 'elapsed')
    };
    var second = h('div', { class: 'sub', id: 'live-second' });
    var charts = h('div', { class: 'charts', id: 'live-charts' });
    var tasksBox = h('section', { class: 'panel', id: 'exec-tasks' });
    var reportBox = h('section', { class: 'panel report', id: 'report', hidden: true });

    append(v.el, [
      h('div', { class: 'titlebar' }, [h('div', null, [h('div', { class: 'crumb' }, h('a', { href: '#/executions', text: '← Executions' })), h('div', { class: 'titleline' }, [title, state])]), h('div', { class: 'titleactions' }, [links, cancel])]),
      meta,
      progressBar,
      reason,
      h('section', { class: 'figures' }, [F.rps.box, h('div', { class: 'figure-grid' }, [F.planned.box, F.p50.box, F.p95.box, F.p99.box, F.errs.box, F.completed.box, F.errors.box, F.elapsed.box])]),
      second,
      charts,
      tasksBox,
      reportBox
    ]);

    var view = null;          // the last REST view
    var finalReport = null;
    var stateNow = null;

    function setState(s, why) {
      if (!s) return;
      stateNow = s;
      state.dataset.state = s;
      clear(state).appendChild(badge(s));
      cancel.hidden = !!TERMINAL[s];
      if (why) { reason.hidden = false; reason.textContent = why; reason.className = 'banner' + (s === 'failed' ? ' error' : ''); }
      if (TERMINAL[s]) {
        links.hidden = false;
        byId('exec-progress').style.width = '100%';
        loadReport(0);
      }
    }

    function refresh() {
      return api('GET', '/api/executions/' + encodeURIComponent(id)).then(function (x) {
        if (v.destroyed) return;
        v.ok();
        view = x;
        title.textContent = x.name || 'Execution';
        document.title = (x.name || 'execution') + ' · mcpt';
        clear(meta);
        append(meta, [
          h('span', { class: 'mono', text: x.execution_id }),
          h('span', { text: 'created ' + clock(x.created_at_ms) }),
          x.started_at_ms ? h('span', { text: 'started ' + clock(x.started_at_ms) }) : null,
          x.finished_at_ms ? h('span', { text: 'finished ' + clock(x.finished_at_ms) }) : null,
          finite(x.duration_s) ? h('span', { text: 'planned ' + seconds(x.duration_s) }) : null,
          x.waiting_for ? h('span', { class: 'warn', text: 'waiting: ' + x.waiting_for }) : null
        ]);
        byId('exec-progress').style.width = (finite(x.progress_percent) ? x.progress_percent : 0) + '%';
        if (x.state !== stateNow || (x.reason && reason.hidden)) setState(x.state, x.reason);
        // Without the stream, the REST view's last complete second feeds the figures.
        if (!Live.live() && !TERMINAL[x.state]) fromPoll(x);
        renderTasks();
      }).catch(function (e) {
        if (e.status === 404) { v.fail(new ApiError(404, null, 'No execution ' + id + '.')); return; }
        v.fail(e);
      });
    }

    function fromPoll(x) {
      var e = seenOf(id);
      (x.tasks || []).forEach(function (t) {
        var p = t.last_second;
        if (!p) return;
        var task = e.tasks[t.task_id] || (e.tasks[t.task_id] = { name: t.name, points: {} });
        if (task.points[p.second] && task.points[p.second].source !== 'poll') return;
        var ev = {
          source: 'poll', execution_id: id, task_id: t.task_id, task: t.name, second: p.second,
          planned_rps: p.planned, achieved_rps: p.completed, sent: p.sent, completed: p.completed,
          errors: p.errors, p50_ms: p.p50_ms, p95_ms: p.p95_ms, p99_ms: p.p99_ms,
          total_completed: t.completed, total_errors: t.errors, nodes: (t.nodes || []).length
        };
        task.points[p.second] = ev;
        if (!task.last || p.second >= task.last.second) task.last = ev;
      });
      draw('poll');
    }

    // The per-second series of every task: sums for rates, the worst task for latency.
    function series() {
      var e = seenOf(id);
      var ids = Object.keys(e.tasks);
      var bySecond = {};
      ids.forEach(function (k) {
        var pts = e.tasks[k].points;
        Object.keys(pts).forEach(function (s) {
          var p = pts[s];
          var b = bySecond[s] || (bySecond[s] = { planned: 0, achieved: 0, errors: 0, p50: 0, p95: 0, p99: 0 });
          b.planned += p.planned_rps;
          b.achieved += p.achieved_rps;
          b.errors += p.errors;
          b.p50 = Math.max(b.p50, p.p50_ms);
          b.p95 = Math.max(b.p95, p.p95_ms);
          b.p99 = Math.max(b.p99, p.p99_ms);
        });
      });
      var xs = Object.keys(bySecond).map(Number).sort(function (a, b) { return a - b; });
      return { tasks: ids.length, x: xs, at: function (s) { return bySecond[s]; } };
    }

    // Figures and charts from the stats seen so far; `source` is what fed the last update.
    function draw(source) {
      var e = seenOf(id);
      var ids = Object.keys(e.tasks);
      if (!ids.length) return;
      var latest = -1;
      ids.forEach(function (k) { if (e.tasks[k].last) latest = Math.max(latest, e.tasks[k].last.second); });
      var s = series();
      var now = s.at(latest);
      var completed = 0, errs = 0;
      ids.forEach(function (k) {
        var l = e.tasks[k].last;
        if (l) { completed += l.total_completed; errs += l.total_errors; }
      });
      if (!finalReport && now) {
        F.rps.value.textContent = rps(now.achieved);
        F.rps.value.dataset.source = source;
        F.rps.value.dataset.second = String(latest);
        F.planned.value.textContent = rps(now.planned);
        F.p50.value.textContent = ms(now.p50);
        F.p95.value.textContent = ms(now.p95);
        F.p99.value.textContent = ms(now.p99);
        F.errs.value.textContent = num(now.errors);
        F.errs.box.classList.toggle('bad', now.errors > 0);
        F.completed.value.textContent = num(completed);
        F.errors.value.textContent = num(errs);
        F.errors.box.classList.toggle('bad', errs > 0);
        F.elapsed.value.textContent = (latest + 1) + (finite(view && view.duration_s) ? ' / ' + Math.ceil(view.duration_s) : '') + ' s';
        second.textContent = 'Figures of second ' + (latest + 1) +
          (s.tasks > 1 ? ' · rates summed over ' + s.tasks + ' tasks, latency of the slowest' : '') +
          (source === 'poll' ? ' · polled: the live stream is down' : ' · live');
        if (view && finite(view.duration_s) && view.duration_s > 0 && !TERMINAL[stateNow]) {
          byId('exec-progress').style.width = Math.min(100, (latest + 1) / view.duration_s * 100) + '%';
        }
      }
      drawCharts(s.x, function (k) { return s.x.map(function (x) { return s.at(x)[k]; }); }, s.tasks);
      renderTasks();
    }

    function drawCharts(x, col, tasks) {
      var closed = col('planned').every(function (p) { return p === 0; });
      var rateSeries = [{ name: 'achieved', values: col('achieved') }];
      if (!closed) rateSeries.unshift({ name: 'planned', values: col('planned'), dashed: true, color: '#888888' });
      clear(charts);
      append(charts, [
        chart({ title: 'Requests per second', unit: 'req/s', x: x, series: rateSeries, width: 400, height: 220 }),
        chart({ title: 'Latency' + (tasks > 1 ? ' (slowest task)' : ''), unit: 'ms', x: x, width: 400, height: 220, series: [
          { name: 'p50', values: col('p50') }, { name: 'p95', values: col('p95') }, { name: 'p99', values: col('p99') }
        ] }),
        chart({ title: 'Errors per second', unit: 'errors/s', x: x, width: 400, height: 220, series: [
          { name: 'errors', values: col('errors'), color: '#D55E00' }
        ] })
      ]);
    }

    function renderTasks() {
      var e = seenOf(id);
      var tasks = (view && view.tasks) || [];
      if (!tasks.length && !Object.keys(e.tasks).length) { tasksBox.hidden = true; return; }
      tasksBox.hidden = false;
      var rows = tasks.map(function (t) {
        var l = (e.tasks[t.task_id] || {}).last || {};
        var lat = t.latency_ms || {};
        return h('tr', null, [
          td(h('strong', { text: t.name })),
          td(num(t.planned_requests), 'num'),
          td(num(t.sent), 'num'),
          td(num(l.total_completed !== undefined ? Math.max(l.total_completed, t.completed || 0) : t.completed), 'num'),
          td(num(l.total_errors !== undefined ? Math.max(l.total_errors, t.errors || 0) : t.errors), 'num'),
          td(num(t.late_starts), 'num'),
          td(ms(lat.p50), 'num'), td(ms(lat.p95), 'num'), td(ms(lat.p99), 'num'),
          td((t.nodes || []).map(function (n) {
            return h('span', { class: 'chip' + (n.lost ? ' bad' : ''), title: 'sent ' + n.sent + ', completed ' + n.completed + ', errors ' + n.errors, text: n.node_id + ' ' + num(n.completed) });
          }))
        ]);
      });
      clear(tasksBox);
      append(tasksBox, [
        h('h2', { text: 'Tasks' }),
        table(['Task', N('Planned'), N('Sent'), N('Completed'), N('Errors'), N('Late starts'), N('p50'), N('p95'), N('p99'), 'Nodes (completed)'], rows)
      ]);
    }

    var reportLoading = false;
    function loadReport(attempt) {
      if (finalReport || v.destroyed || (reportLoading && attempt === 0)) return;
      reportLoading = true;
      api('GET', '/api/executions/' + encodeURIComponent(id) + '/report').then(function (r) {
        if (v.destroyed) return;
        finalReport = r;
        renderReport(r);
      }).catch(function (e) {
        // The report is written as the execution ends; wait for it a little.
        if ((e.status === 409 || e.status === 503 || e.status === 0) && attempt < 20) {
          setTimeout(function () { loadReport(attempt + 1); }, 500);
        } else if (!v.destroyed) {
          reportBox.hidden = false;
          clear(reportBox).appendChild(h('p', { class: 'empty', text: 'No report: ' + e.message }));
        }
      });
    }

    function renderReport(r) {
      var s = r.summary || {};
      var lat = s.latency_ms || {}, un = s.latency_uncorrected_ms || {};
      var err = s.errors || {};
      F.rps.value.textContent = rps(s.achieved_rps);
      F.rps.value.dataset.source = 'report';
      F.rps.label.textContent = 'achieved req/s (average)';
      F.planned.value.textContent = rps(s.duration_s > 0 ? s.planned_requests / s.duration_s : null);
      F.planned.label.textContent = 'planned req/s (average)';
      F.p50.value.textContent = ms(lat.p50);
      F.p95.value.textContent = ms(lat.p95);
      F.p99.value.textContent = ms(lat.p99);
      F.errs.value.textContent = pct(s.error_rate * 100);
      F.errs.label.textContent = 'error rate';
      F.errs.box.classList.toggle('bad', err.total > 0);
      F.completed.value.textContent = num(s.total_requests);
      F.errors.value.textContent = num(err.total);
      F.errors.box.classList.toggle('bad', err.total > 0);
      F.elapsed.value.textContent = seconds(s.duration_s);
      F.elapsed.label.textContent = 'duration';
      second.textContent = 'Final figures, from the report.';

      // The report's timelines are complete: chart them instead of what the stream showed.
      var bySecond = {};
      (r.tasks || []).forEach(function (t) {
        (t.timeline || []).forEach(function (p) {
          var b = bySecond[p.second] || (bySecond[p.second] = { planned: 0, achieved: 0, errors: 0, p50: 0, p95: 0, p99: 0 });
          b.planned += p.planned; b.achieved += p.completed; b.errors += p.errors;
          b.p50 = Math.max(b.p50, p.p50_ms); b.p95 = Math.max(b.p95, p.p95_ms); b.p99 = Math.max(b.p99, p.p99_ms);
        });
      });
      var xs = Object.keys(bySecond).map(Number).sort(function (a, b) { return a - b; });
      if (xs.length) drawCharts(xs, function (k) { return xs.map(function (x) { return bySecond[x][k]; }); }, (r.tasks || []).length);

      function kv(label, value, cls) {
        return h('div', { class: 'kv' + (cls ? ' ' + cls : '') }, [h('div', { class: 'value', text: value }), h('div', { class: 'label', text: label })]);
      }
      var pctRow = function (label, p) {
        return h('tr', null, [td(label), td(ms(p.p50), 'num'), td(ms(p.p90), 'num'), td(ms(p.p95), 'num'), td(ms(p.p99), 'num'), td(ms(p.p999), 'num'), td(ms(p.max), 'num'), td(ms(p.mean), 'num')]);
      };
      clear(reportBox);
      reportBox.hidden = false;
      append(reportBox, [
        h('div', { class: 'titlebar' }, [h('h2', { text: 'Report' + (s.interrupted ? ' (interrupted)' : '') }),
          h('a', { href: '/api/executions/' + encodeURIComponent(id) + '/report.html', target: '_blank', rel: 'noopener', text: 'Open the HTML report' })]),
        h('div', { class: 'kvs', id: 'report-summary' }, [
          kv('requests completed', num(s.total_requests)),
          kv('planned', num(s.planned_requests)),
          kv('sent', num(s.sent_requests)),
          kv('planned, not sent', num(s.not_sent), s.not_sent ? 'bad' : ''),
          kv('average req/s', rps(s.achieved_rps)),
          kv('duration', seconds(s.duration_s)),
          kv('errors', num(err.total) + ' (' + pct((s.error_rate || 0) * 100) + ')', err.total ? 'bad' : ''),
          kv('late starts', num(s.late_starts), s.late_starts ? 'warn' : '')
        ]),
        h('h3', { text: 'Latency' }),
        table(['', N('p50'), N('p90'), N('p95'), N('p99'), N('p99.9'), N('max'), N('mean')], [
          pctRow('from the planned start', lat),
          pctRow('from the actual send', un)
        ], { class: 'grid compact', id: 'report-latency' }),
        h('h3', { text: 'Errors' }),
        table([N('total'), N('connect'), N('timeout'), N('status'), N('body')], [h('tr', null, [
          td(num(err.total), 'num'), td(num(err.connect), 'num'), td(num(err.timeout), 'num'), td(num(err.status), 'num'), td(num(err.body), 'num')
        ])], { class: 'grid compact', id: 'report-errors' })
      ]);
      (r.tasks || []).forEach(function (t) {
        var codes = Object.keys(t.status_codes || {}).map(function (c) { return h('span', { class: 'chip' + (Number(c) >= 400 ? ' bad' : ''), text: c + ' × ' + num(t.status_codes[c]) }); });
        append(reportBox, [
          h('h3', { text: 'Task ' + t.name }),
          h('div', { class: 'sub' }, [t.model + ' model · ' + t.pattern + ' · ' + t.arrivals + ' arrivals · ' + t.concurrent_users + ' users · ' + seconds(t.duration_s) + ' · status codes: ']
            .concat(codes.length ? codes : ['none'])),
          t.nodes && t.nodes.length ? table(['Node', N('Sent'), N('Completed'), N('Errors'), 'Lost'], t.nodes.map(function (n) {
            return h('tr', null, [td(h('strong', { text: n.node_id })), td(num(n.sent), 'num'), td(num(n.completed), 'num'), td(num(n.errors), 'num' + (n.errors ? ' bad' : '')), td(n.lost ? badge('lost', 'health') : 'no')]);
          }), { class: 'grid compact report-nodes' }) : h('p', { class: 'sub', text: 'Ran standalone (no per-node figures).' })
        ]);
      });
    }

    cancel.addEventListener('click', function () {
      cancel.disabled = true;
      cancel.textContent = 'Cancelling…';
      api('DELETE', '/api/executions/' + encodeURIComponent(id)).then(function () {
        cancel.textContent = 'Cancel execution';
        cancel.disabled = false;
        refresh();
      }).catch(function (e) {
        cancel.disabled = false;
        cancel.textContent = 'Cancel execution';
        v.fail(e);
        refresh();
      });
    });

    var redraw = null;
    v.on('stats', function (ev) {
      if (ev.execution_id !== id || finalReport) return;
      if (redraw) return;
      // One redraw per frame, however many tasks report the same second.
      redraw = requestAnimationFrame(function () { redraw = null; draw('stream'); });
    });
    v.on('execution_state', function (ev) {
      if (ev.execution_id !== id) return;
      setState(ev.state, ev.reason);
      refresh();
    });
    v.on('reconnect', refresh);
    v.every(1000, function () {
      // Live: the REST view only adds progress and shares, every few seconds. Without the
      // stream it is the live feed, every second.
      if (TERMINAL[stateNow]) return;
      if (!Live.live() || (Date.now() / 1000 | 0) % 3 === 0) refresh();
    });
    v.onDestroy = function () { if (redraw) cancelAnimationFrame(redraw); };
    refresh();
    draw('stream');
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

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
