// mcpt web UI: one execution's page (#/executions/<id>): its state, live figures and charts
// from the event stream's stats (the seconds before the page opened, or missed while the
// stream was down, from GET /api/executions/<id>/timeline), the tasks' totals from GET
// /api/executions/<id>, live control of a running execution (PATCH), a cancel button, and
// the final report once it ends.
(function () {
  'use strict';

  var M = window.Mcpt;
  var h = M.h, append = M.append, clear = M.clear, byId = M.byId, finite = M.finite, num = M.num;
  var rps = M.rps, ms = M.ms, pct = M.pct, clock = M.clock, seconds = M.seconds, badge = M.badge;
  var table = M.table, td = M.td, N = M.N, chart = M.chart, api = M.api, ApiError = M.ApiError;
  var Live = M.Live, seenOf = M.seenOf, addStats = M.addStats, View = M.View, TERMINAL = M.TERMINAL;

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
    var requestsBox = h('section', { class: 'panel', id: 'exec-requests', hidden: true });
    var reportBox = h('section', { class: 'panel report', id: 'report', hidden: true });
    var ctl = controls();

    append(v.el, [
      h('div', { class: 'titlebar' }, [h('div', null, [h('div', { class: 'crumb' }, h('a', { href: '#/executions', text: '← Executions' })), h('div', { class: 'titleline' }, [title, state])]), h('div', { class: 'titleactions' }, [links, cancel])]),
      meta,
      progressBar,
      reason,
      h('section', { class: 'figures' }, [F.rps.box, h('div', { class: 'figure-grid' }, [F.planned.box, F.p50.box, F.p95.box, F.p99.box, F.errs.box, F.completed.box, F.errors.box, F.elapsed.box])]),
      second,
      ctl.box,
      charts,
      ctl.list,
      tasksBox,
      requestsBox,
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
      ctl.box.hidden = s !== 'running';
      if (why) { reason.hidden = false; reason.textContent = why; reason.className = 'banner' + (s === 'failed' ? ' error' : ''); }
      if (TERMINAL[s]) {
        links.hidden = false;
        // How far it got, as the server says (a cancelled run stops short of 100 %).
        byId('exec-progress').style.width = (view && finite(view.progress_percent) ? view.progress_percent : 100) + '%';
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
        byId('exec-progress').style.width = (finite(x.progress_percent) ? x.progress_percent : TERMINAL[x.state] ? 100 : 0) + '%';
        if (x.state !== stateNow || (x.reason && reason.hidden)) setState(x.state, x.reason);
        // Without the stream, the REST view's last complete second feeds the figures.
        if (!Live.live() && !TERMINAL[x.state]) fromPoll(x);
        addAdjustments(x.adjustments);
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
        var ev = {
          source: 'poll', execution_id: id, task_id: t.task_id, task: t.name, second: p.second,
          planned_rps: p.planned, achieved_rps: p.completed, sent: p.sent, completed: p.completed,
          errors: p.errors, p50_ms: p.p50_ms, p95_ms: p.p95_ms, p99_ms: p.p99_ms,
          total_completed: t.completed, total_errors: t.errors, nodes: (t.nodes || []).length
        };
        addStats(ev);
      });
      if (holes()) loadTimeline();
      draw('poll');
    }

    // The seconds merged before the page opened, or missed while the stream was down: the
    // timeline, merged with the live events by second (addStats), so the charts have every
    // second once.
    var timelineBusy = false, timelineAt = 0;
    function loadTimeline() {
      if (timelineBusy || v.destroyed || Date.now() - timelineAt < 2000) return;
      timelineBusy = true;
      timelineAt = Date.now();
      api('GET', '/api/executions/' + encodeURIComponent(id) + '/timeline').then(function (t) {
        timelineBusy = false;
        if (v.destroyed || finalReport) return;
        (t.seconds || []).forEach(function (p) { p.source = 'timeline'; addStats(p); });
        draw(Live.live() ? 'stream' : 'poll');
      }).catch(function () { timelineBusy = false; });
    }

    // A task whose seconds seen so far skip one.
    function holes() {
      var e = seenOf(id);
      return Object.keys(e.tasks).some(function (k) {
        var t = e.tasks[k];
        return t.last && Object.keys(t.points).length < t.last.second + 1;
      });
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
        F.elapsed.value.textContent = (latest + 1) + (finite(view && view.duration_s) ? ' / ' + Math.ceil(view.duration_s) : '') + ' s';
        second.textContent = 'Figures of second ' + (latest + 1) +
          (s.tasks > 1 ? ' · rates summed over ' + s.tasks + ' tasks, latency of the slowest' : '') +
          (source === 'poll' ? ' · polled: the live stream is down' : ' · live');
        if (view && finite(view.duration_s) && view.duration_s > 0 && !TERMINAL[stateNow]) {
          byId('exec-progress').style.width = Math.min(100, (latest + 1) / view.duration_s * 100) + '%';
        }
      }
      drawCharts(s.x, function (k) { return s.x.map(function (x) { return s.at(x)[k]; }); }, s.tasks);
    }

    function drawCharts(x, col, tasks) {
      var closed = col('planned').every(function (p) { return p === 0; });
      var marks = adjustments.map(function (a) { return { x: a.at_s, label: describe(a) }; });
      // What the charts hold, for a reader (and the tests) without parsing the SVG.
      charts.dataset.seconds = x.join(',');
      charts.dataset.achieved = col('achieved').join(',');
      var rateSeries = [{ name: 'achieved', values: col('achieved') }];
      if (!closed) rateSeries.unshift({ name: 'planned', values: col('planned'), dashed: true, color: '#888888' });
      clear(charts);
      append(charts, [
        chart({ title: 'Requests per second', unit: 'req/s', x: x, series: rateSeries, width: 400, height: 220, marks: marks }),
        chart({ title: 'Latency' + (tasks > 1 ? ' (slowest task)' : ''), unit: 'ms', x: x, width: 400, height: 220, marks: marks, series: [
          { name: 'p50', values: col('p50') }, { name: 'p95', values: col('p95') }, { name: 'p99', values: col('p99') }
        ] }),
        chart({ title: 'Errors per second', unit: 'errors/s', x: x, width: 400, height: 220, marks: marks, series: [
          { name: 'errors', values: col('errors'), color: '#D55E00' }
        ] })
      ]);
    }

    // The tasks' totals and the summary cards' (completed, errors), all from one REST view and
    // drawn together, so that they always agree (the cards once summed the stream's totals
    // while the table showed the view's, two sources at two moments: 350 against 234).
    function renderTasks() {
      var tasks = (view && view.tasks) || [];
      ctl.tasks(tasks);
      if (!tasks.length) { tasksBox.hidden = true; return; }
      if (!finalReport) {
        var completed = 0, errs = 0;
        tasks.forEach(function (t) { completed += t.completed || 0; errs += t.errors || 0; });
        F.completed.value.textContent = num(completed);
        F.errors.value.textContent = num(errs);
        F.errors.box.classList.toggle('bad', errs > 0);
      }
      tasksBox.hidden = false;
      var rows = tasks.map(function (t) {
        var lat = t.latency_ms || {};
        return h('tr', null, [
          td(h('strong', { text: t.name })),
          td(num(t.planned_requests), 'num'),
          td(num(t.sent), 'num'),
          td(num(t.completed), 'num'),
          td(num(t.errors), 'num' + (t.errors ? ' bad' : '')),
          td(num(t.late_starts), 'num'),
          td(ms(lat.p50), 'num'), td(ms(lat.p95), 'num'), td(ms(lat.p99), 'num'),
          td((t.nodes || []).map(function (n) {
            return h('span', { class: 'chip' + (n.lost ? ' bad' : ''), title: 'sent ' + n.sent + ', completed ' + n.completed + ', errors ' + n.errors, text: n.node_id + ' ' + num(n.completed) });
          }))
        ]);
      });
      tasks.forEach(function (t) { setRequests(t.task_id, t.name, t.requests, t.failures, 'view'); });
      renderRequests();
      clear(tasksBox);
      append(tasksBox, [
        h('div', { class: 'titlebar' }, [h('h2', { text: 'Tasks' }), h('span', { class: 'sub', text: TERMINAL[stateNow] ? 'final' : 'so far, as of ' + clock(Date.now()) })]),
        table(['Task', N('Planned'), N('Sent'), N('Completed'), N('Errors'), N('Late starts'), N('p50'), N('p95'), N('p99'), 'Nodes (completed)'], rows)
      ]);
    }

    // Per request name (Locust's statistics table): the REST view's rows while it runs (the
    // view the tasks table and the cards read, so that they agree), the report's at the end.
    // Sorted by a clicked heading.
    var requestsOf = {};      // task id -> { name, requests, failures, source }
    var sortKey = 'count', sortDown = true;
    var REQUEST_COLUMNS = [
      ['name', 'Request', function (r) { return r.name; }],
      ['method', 'Method', function (r) { return r.method; }],
      ['count', '# Requests', function (r) { return r.count; }],
      ['errors', '# Fails', function (r) { return (r.errors || {}).total; }],
      ['error_rate', 'Fail %', function (r) { return r.error_rate; }],
      ['rps', 'req/s', function (r) { return r.rps; }],
      ['p50', 'p50', function (r) { return (r.latency_ms || {}).p50; }],
      ['p95', 'p95', function (r) { return (r.latency_ms || {}).p95; }],
      ['p99', 'p99', function (r) { return (r.latency_ms || {}).p99; }],
      ['max', 'max', function (r) { return (r.latency_ms || {}).max; }],
      ['checks_failed', 'Checks failed', function (r) { return r.checks_failed; }]
    ];
    function setRequests(taskId, name, requests, failures, source) {
      if (!requests) return;
      var had = requestsOf[taskId];
      // A report is final; a live row never replaces it.
      if (had && had.source === 'report' && source !== 'report') return;
      requestsOf[taskId] = { name: name, requests: requests, failures: failures || (had && had.failures) || [], source: source };
    }
    function renderRequests() {
      var ids = Object.keys(requestsOf).sort(function (a, b) { return a - b; });
      var rows = [], fails = [];
      var many = ids.length > 1;
      ids.forEach(function (k) {
        var t = requestsOf[k];
        t.requests.forEach(function (r) { rows.push({ task: t.name, r: r }); });
        t.failures.forEach(function (f) { fails.push({ task: t.name, f: f }); });
      });
      if (!rows.length) { requestsBox.hidden = true; return; }
      requestsBox.hidden = false;
      var col = REQUEST_COLUMNS.filter(function (c) { return c[0] === sortKey; })[0] || REQUEST_COLUMNS[2];
      rows.sort(function (a, b) {
        var x = col[2](a.r), y = col[2](b.r);
        var c = x < y ? -1 : x > y ? 1 : 0;
        return sortDown ? -c : c;
      });
      var heads = (many ? [{ text: 'Task' }] : []).concat(REQUEST_COLUMNS.map(function (c) {
        var numeric = c[0] !== 'name' && c[0] !== 'method';
        var mark = c[0] === sortKey ? (sortDown ? ' ▾' : ' ▴') : '';
        return { text: c[1] + mark, class: (numeric ? 'num ' : '') + 'sortable', 'data-sort': c[0] };
      }));
      var body = rows.map(function (x) {
        var r = x.r, lat = r.latency_ms || {}, errs = (r.errors || {}).total || 0;
        return h('tr', { 'data-request': r.name }, (many ? [td(x.task)] : []).concat([
          td(h('strong', { text: r.name })), td(r.method),
          td(num(r.count), 'num'), td(num(errs), 'num' + (errs ? ' bad' : '')),
          td(pct((r.error_rate || 0) * 100), 'num'), td(rps(r.rps), 'num'),
          td(ms(lat.p50), 'num'), td(ms(lat.p95), 'num'), td(ms(lat.p99), 'num'), td(ms(lat.max), 'num'),
          td(num(r.checks_failed), 'num' + (r.checks_failed ? ' bad' : ''))
        ]));
      });
      clear(requestsBox);
      append(requestsBox, [
        h('div', { class: 'titlebar' }, [h('h2', { text: 'Requests' }), h('span', { class: 'sub', text: 'by name; click a heading to sort' })]),
        table(heads, body, { class: 'grid', id: 'requests-table' }),
        fails.length ? h('h3', { text: 'Failures' }) : null,
        fails.length ? table((many ? ['Task'] : []).concat(['Request', 'Kind', 'Message', N('Count')]), fails.map(function (x) {
          return h('tr', null, (many ? [td(x.task)] : []).concat([td(h('strong', { text: x.f.request })), td(x.f.kind), td(x.f.message), td(num(x.f.count), 'num bad')]));
        }), { class: 'grid compact', id: 'failures-table' }) : null
      ]);
      requestsBox.querySelectorAll('th[data-sort]').forEach(function (th) {
        th.addEventListener('click', function () {
          var key = th.getAttribute('data-sort');
          sortDown = key === sortKey ? !sortDown : true;
          sortKey = key;
          renderRequests();
        });
      });
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
        h('div', { class: 'titlebar' }, [h('h2', { text: 'Report' + (s.stopped_by ? ' (stopped early)' : s.interrupted ? ' (interrupted)' : '') +
            // The run's verdict: the field `mcpt run`'s exit code (3) and MCP's verdict read.
            (s.thresholds_passed === true ? ' · passed' : s.thresholds_passed === false ? ' · FAILED' : '') }),
          h('a', { href: '/api/executions/' + encodeURIComponent(id) + '/report.html', target: '_blank', rel: 'noopener', text: 'Open the HTML report' }),
          h('a', { id: 'report-csv-timeline', href: '/api/executions/' + encodeURIComponent(id) + '/report.csv?table=timeline', download: 'timeline.csv', text: 'Timeline CSV' }),
          h('a', { id: 'report-csv-requests', href: '/api/executions/' + encodeURIComponent(id) + '/report.csv?table=requests', download: 'requests.csv', text: 'Requests CSV' })]),
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
        s.stopped_by ? h('p', { class: 'bad', id: 'report-stopped-by', text: 'Stopped early: ' + s.stopped_by }) : null,
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
      (r.tasks || []).forEach(function (t, i) { setRequests(i, t.name, t.requests || [], t.failures || [], 'report'); addAdjustments(t.adjustments, i); });
      renderRequests();
      (r.tasks || []).forEach(function (t) {
        var codes = Object.keys(t.status_codes || {}).map(function (c) { return h('span', { class: 'chip' + (Number(c) >= 400 ? ' bad' : ''), text: c + ' × ' + num(t.status_codes[c]) }); });
        append(reportBox, [
          h('h3', null, ['Task ', h('span', { class: 'name', text: t.name })]),
          h('div', { class: 'sub' }, [t.model + ' model · ' + t.pattern + ' · ' + t.arrivals + ' arrivals · ' + t.concurrent_users + ' users · ' + seconds(t.duration_s) + ' · status codes: ']
            .concat(codes.length ? codes : ['none'])),
          t.iterations ? h('div', { class: 'sub report-iterations' }, 'Flow iterations: ' + num(t.iterations.completed) +
            (t.iterations.planned != null ? ' of ' + num(t.iterations.planned) + ' planned' : '') + ', ' + num(t.iterations.failed) + ' failed, ' +
            rps(t.iterations.rps) + ' per second, p50 ' + ms(t.iterations.latency_ms.p50) + ', p99 ' + ms(t.iterations.latency_ms.p99) +
            (t.iterations.data_exhausted ? ' · a unique data source ran out of rows: later arrivals were not started' : '')) : null,
          t.thresholds && t.thresholds.length ? table(['Threshold', 'Verdict', N('Actual'), N('Bound')], t.thresholds.map(function (v) {
            var verdict = v.passed ? 'pass' : (v.aborted_at_s != null ? 'FAIL, aborted the run at ' + v.aborted_at_s + ' s' : 'FAIL');
            return h('tr', null, [td(h('code', { text: v.threshold })), td(verdict, v.passed ? '' : 'bad'),
              td(String(Math.round(v.actual * 1000) / 1000), 'num'), td(String(Math.round(v.bound * 1000) / 1000), 'num')]);
          }), { class: 'grid compact report-thresholds' }) : null,
          t.nodes && t.nodes.length ? table(['Node', N('Sent'), N('Completed'), N('Errors'), 'Lost'], t.nodes.map(function (n) {
            return h('tr', null, [td(h('strong', { text: n.node_id })), td(num(n.sent), 'num'), td(num(n.completed), 'num'), td(num(n.errors), 'num' + (n.errors ? ' bad' : '')), td(n.lost ? badge('lost', 'health') : 'no')]);
          }), { class: 'grid compact report-nodes' }) : h('p', { class: 'sub', text: 'Ran standalone (no per-node figures).' })
        ]);
      });
    }

    // ------------------------------------------------ live control (PATCH /api/executions/<id>)

    // The changes made to the run so far (from the PATCH answers, the view, the stream's
    // execution_adjusted events and the report), each once; marks on the charts.
    var adjustments = [], adjustmentSeen = {};
    // The report's tasks list their changes as the cluster keeps them (from_ms, at_unix_ms);
    // the view and the stream as the API shows them (task, at_s, asked_at_unix_ms).
    function addAdjustments(list, task) {
      var added = false;
      (list || []).forEach(function (a) {
        if (!a) return;
        if (a.at_s == null && a.from_ms != null) {
          a = { task: task, at_s: a.from_ms / 1000, change: a.change, by: a.by, asked_at_unix_ms: a.at_unix_ms };
        }
        var key = JSON.stringify([a.task, a.at_s, a.by, a.change, a.asked_at_unix_ms]);
        if (adjustmentSeen[key]) return;
        adjustmentSeen[key] = added = true;
        adjustments.push(a);
      });
      if (!added) return;
      adjustments.sort(function (a, b) { return a.at_s - b.at_s; });
      ctl.show(adjustments);
      if (!finalReport) draw(Live.live() ? 'stream' : 'poll');
    }

    function describe(a) {
      var c = a.change || {}, parts = [];
      if (c.rate_factor != null) parts.push('rate × ' + c.rate_factor);
      var r = c.rates;
      if (r && r.base_rps != null) parts.push('rate ' + rps(r.base_rps) + ' req/s' + (r.peak_rps != null ? ', peak ' + rps(r.peak_rps) : ''));
      if (c.concurrent_users != null) parts.push(num(c.concurrent_users) + ' users');
      if (c.paused != null) parts.push(c.paused ? 'paused' : 'resumed');
      if (!parts.length) parts.push(JSON.stringify(c));
      return seconds(a.at_s) + ': ' + parts.join(', ') + (a.task != null && view && view.tasks && view.tasks.length > 1 ? ' (task ' + a.task + ')' : '') + (a.by ? ' · by ' + a.by : '');
    }

    function controls() {
      function box(idAttr, attrs) {
        var a = { id: idAttr, autocomplete: 'off', size: 7 };
        Object.keys(attrs).forEach(function (k) { a[k] = attrs[k]; });
        return h('input', a);
      }
      var task = h('select', { id: 'ctl-task', 'aria-label': 'task', hidden: true });
      var inputs = {
        rate_factor: box('ctl-rate-factor', { inputmode: 'decimal', placeholder: '× 2', 'aria-label': 'rate factor' }),
        base_rps: box('ctl-base-rps', { inputmode: 'decimal', placeholder: 'req/s', 'aria-label': 'new rate' }),
        peak_rps: box('ctl-peak-rps', { inputmode: 'decimal', placeholder: 'peak', 'aria-label': 'new peak rate (optional)' }),
        concurrent_users: box('ctl-users', { inputmode: 'numeric', placeholder: 'users', 'aria-label': 'users' })
      };
      var pause = h('button', { type: 'button', id: 'ctl-pause', text: 'Pause' });
      var error = h('div', { class: 'field-error', id: 'ctl-error', hidden: true });
      var paused = false;
      // A number when the text is one; the text otherwise, so the server names the error.
      function value(el) { var t = el.value.trim(); return t !== '' && isFinite(Number(t)) ? Number(t) : t; }
      function send(change, button) {
        if (task.value !== '') change.task = Number(task.value);
        Object.keys(inputs).forEach(function (k) { inputs[k].classList.remove('invalid'); });
        error.hidden = true;
        button.disabled = true;
        api('PATCH', '/api/executions/' + encodeURIComponent(id), change).then(function (x) {
          button.disabled = false;
          if (v.destroyed) return;
          if (x && x.tasks) { view = x; renderTasks(); }
          addAdjustments(x && x.adjustments);
        }).catch(function (e) {
          button.disabled = false;
          if (v.destroyed) return;
          var field = e.body && e.body.field;
          if (inputs[field]) inputs[field].classList.add('invalid');
          error.hidden = false;
          error.dataset.errorFor = field || '';
          error.textContent = (field ? field + ': ' : '') + (e.status === 409 ? 'not running: ' : '') + e.message;
        });
      }
      function apply(idAttr, text, fn) {
        var b = h('button', { type: 'button', id: idAttr, text: text });
        b.addEventListener('click', function () { send(fn(), b); });
        return b;
      }
      pause.addEventListener('click', function () { send({ paused: !paused }, pause); });
      var rate = h('div', { class: 'ctl-row', id: 'ctl-rate' }, [
        h('span', { class: 'sub', text: 'Rate' }), inputs.rate_factor,
        apply('ctl-rate-apply', 'Scale', function () { return { rate_factor: value(inputs.rate_factor) }; }),
        h('span', { class: 'sub', text: 'or set' }), inputs.base_rps, inputs.peak_rps,
        apply('ctl-rps-apply', 'Set rate', function () {
          var c = { base_rps: value(inputs.base_rps) };
          if (inputs.peak_rps.value.trim() !== '') c.peak_rps = value(inputs.peak_rps);
          return c;
        })
      ]);
      var users = h('div', { class: 'ctl-row', id: 'ctl-users-row', hidden: true }, [
        h('span', { class: 'sub', text: 'Users' }), inputs.concurrent_users,
        apply('ctl-users-apply', 'Set users', function () { return { concurrent_users: value(inputs.concurrent_users) }; })
      ]);
      var list = h('section', { class: 'panel', id: 'adjustments-box', hidden: true }, [h('h2', { text: 'Changes made while it ran' }), h('ul', { id: 'adjustments' })]);
      return {
        box: h('section', { class: 'panel controls', id: 'exec-controls', hidden: true }, [
          h('div', { class: 'titlebar' }, [h('h2', { text: 'Live control' }), task]), rate, users,
          h('div', { class: 'ctl-row' }, [pause]), error
        ]),
        list: list,
        // The tasks of the view: open-model ones take a rate, closed ones users.
        tasks: function (tasks) {
          rate.hidden = !tasks.some(function (t) { return t.planned_requests != null; });
          users.hidden = !tasks.some(function (t) { return t.planned_requests == null; });
          task.hidden = tasks.length < 2;
          if (task.options.length !== tasks.length + 1) {
            clear(task).appendChild(h('option', { value: '', text: 'all load tasks' }));
            tasks.forEach(function (t) { task.appendChild(h('option', { value: String(t.task_id), text: t.name })); });
          }
        },
        show: function (items) {
          var ul = clear(list.querySelector('ul'));
          items.forEach(function (a) {
            ul.appendChild(h('li', { 'data-at': String(a.at_s), text: describe(a) }));
            if (a.change && a.change.paused != null) paused = !!a.change.paused;
          });
          pause.textContent = paused ? 'Resume' : 'Pause';
          list.hidden = !items.length;
        }
      };
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
      if (holes()) loadTimeline();
      if (redraw) return;
      // One redraw per frame, however many tasks report the same second.
      redraw = requestAnimationFrame(function () { redraw = null; draw('stream'); });
    });
    v.on('execution_state', function (ev) {
      if (ev.execution_id !== id) return;
      setState(ev.state, ev.reason);
      refresh();
    });
    v.on('execution_adjusted', function (ev) {
      if (ev.execution_id === id) addAdjustments([ev.adjustment]);
    });
    v.on('reconnect', function () { refresh(); loadTimeline(); });
    // The REST view: progress and the totals (cards and tasks table) while the stream gives
    // the seconds; without the stream, the live feed too.
    v.every(1000, function () { if (!TERMINAL[stateNow]) refresh(); });
    v.onDestroy = function () { if (redraw) cancelAnimationFrame(redraw); };
    refresh();
    loadTimeline();
    draw('stream');
    return v;
  }

  M.views.execution = executionView;
})();
