// mcpt web UI: the new-execution form (#/new). Every change asks the server for the plan's
// rate curve (POST /api/executions/preview, the same validation as the submit) and draws it;
// the server's 422 errors show under the fields they name. Submitting posts /api/executions
// and opens the execution's page.
(function () {
  'use strict';

  var M = window.Mcpt;
  var h = M.h, append = M.append, clear = M.clear, num = M.num, rps = M.rps, seconds = M.seconds;
  var chart = M.chart, debounce = M.debounce, api = M.api, View = M.View;

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

    // A row of a list (targets, stages) with its remove button; the server's errors about
    // `path` and its `keys` are shown on it.
    function listRow(box, rows, entry, title, path, keys) {
      var remove = h('button', { type: 'button', class: 'link', title: title, text: '×', onclick: function () {
        rows.splice(rows.indexOf(entry), 1);
        box.removeChild(entry.row);
        changed();
      } });
      entry.row.appendChild(remove);
      rows.push(entry);
      box.appendChild(entry.row);
      keys.forEach(function (k) { fields[path + k] = entry.row; });
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
      listRow(targetsBox, targetRows, { row: row, method: method, url: url }, 'remove this target',
        P + 'targets[' + i + ']', ['', '.url', '.method']);
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
    // A user flow, as the plan's `flow` in JSON; when given it replaces the targets.
    var flowText = h('textarea', { id: 'f-flow', rows: 8, spellcheck: 'false', autocomplete: 'off',
      placeholder: '[{"name": "login", "request": {"method": "POST", "url": "<target>/login", "body": {"user": "u{{ vu }}", "password": "p"}}, "capture": {"token": {"json": "$.token"}}}, {"name": "me", "request": {"url": "<target>/me", "headers": {"authorization": "Bearer {{ token }}"}}}]' });
    flowText.value = saved['f-flow'] || '';
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
      listRow(stagesBox, stageRows, { row: row, duration: d, rps: r }, 'remove this stage',
        P + 'stages[' + i + ']', ['', '.duration', '.target_rps']);
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
    var flowField = field('Flow (JSON, instead of the targets)', flowText, P + 'flow',
      'steps: request (with capture, check), think, loop, group; variables {{ vu }}, {{ iteration }}, captures', 'wide');

    var form = h('form', { class: 'panel form', id: 'new-execution', novalidate: true }, [
      h('div', { class: 'row' }, [field('Name', name, 'name', null, 'wide')]),
      h('div', { class: 'row' }, [targetsField]),
      h('div', { class: 'row' }, [flowField]),
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
      targetsField.hidden = flowText.value.trim() !== '';
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
      var flow = flowText.value.trim();
      if (flow) {
        // Not JSON: sent as text, so the server says what is wrong with it.
        try { p.flow = JSON.parse(flow); } catch (e) { p.flow = flow; }
      } else {
        p.targets = targetRows.map(function (t) { return { url: t.url.value.trim(), method: t.method.value }; });
      }
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
      [name, model, pattern, base, peak, duration, users, thinkTime, arrivals, flowText].forEach(function (el) { s[el.id] = el.value; });
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
        : flowText.value.trim()
          ? num(planned) + ' flow iterations planned over ' + seconds(r.duration_s) + ' · peak ' + rps(peakRate) + ' iterations/s'
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

  M.views.new = newView;
})();
