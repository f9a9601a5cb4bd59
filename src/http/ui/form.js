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
      // Headers ("Name: value" a line) and a body (JSON, sent as JSON; other text as is).
      var headers = h('textarea', { class: 'f-headers', id: 'f-target-headers-' + i, rows: 2, spellcheck: 'false', placeholder: 'Authorization: Bearer …', 'aria-label': 'headers' });
      var reqBody = h('textarea', { class: 'f-body', id: 'f-target-body-' + i, rows: 2, spellcheck: 'false', placeholder: '{"key": "value"}', 'aria-label': 'body' });
      headers.value = (t && t.headers) || '';
      reqBody.value = (t && t.body) || '';
      var more = h('div', { class: 'target-more', hidden: !headers.value && !reqBody.value }, [
        h('label', { for: headers.id, class: 'sub', text: 'Headers' }), headers,
        h('label', { for: reqBody.id, class: 'sub', text: 'Body' }), reqBody
      ]);
      var toggle = h('button', { type: 'button', class: 'link', id: 'f-target-more-' + i, text: 'headers, body', onclick: function () { more.hidden = !more.hidden; } });
      var row = h('div', { class: 'target-row', 'data-field': P + 'targets[' + i + ']' }, [method, url, toggle, more]);
      listRow(targetsBox, targetRows, { row: row, method: method, url: url, headers: headers, body: reqBody }, 'remove this target',
        P + 'targets[' + i + ']', ['', '.url', '.method', '.headers', '.body']);
    }

    // A target as the plan takes it: its headers and body only when given.
    function targetOf(t) {
      var out = { url: t.url.value.trim(), method: t.method.value };
      var hs = {};
      t.headers.value.split('\n').forEach(function (line) {
        var at = line.indexOf(':');
        if (line.trim() === '') return;
        if (at < 1) { hs[line.trim()] = ''; return; }  // the server names the bad header
        hs[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      });
      if (Object.keys(hs).length) out.headers = hs;
      var b = t.body.value.trim();
      if (b) {
        try { var j = JSON.parse(b); out.body = j !== null && typeof j === 'object' ? j : b; } catch (e) { out.body = b; }
      }
      return out;
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
    var taskType = select('f-type', [['load_test', 'Load test'], ['performance_test', 'Performance test'],
      ['stress_test', 'Stress test'], ['security_test', 'Security scan']], 'load_test');
    // Thresholds, one a line ("p99_ms < 200"); each fails the run when it does not hold.
    var thresholds = h('textarea', { id: 'f-thresholds', rows: 2, spellcheck: 'false', placeholder: 'p99_ms < 200\nerror_rate < 0.01' });
    thresholds.value = saved['f-thresholds'] || '';
    var abortOnFail = h('input', { type: 'checkbox', id: 'f-abort-on-fail' });
    abortOnFail.checked = saved['f-abort-on-fail'] === true;
    // A stress test: its steps and when a step breaks (src/task/stress/spec.rs).
    var stress = {};
    [['start_rps', 'Start rate (req/s)', '10'], ['step_rps', 'Step (req/s)', '10'], ['step_duration', 'Step length', '10s'],
      ['max_rps', 'Up to (req/s)', '100'], ['consecutive', 'Bad seconds in a row', '3'],
      ['break_on.error_rate', 'Break at error rate', '0.05'], ['break_on.p99_ms', 'Break at p99 (ms)', '1000'],
      ['break_on.min_achieved_ratio', 'Break below achieved/planned', '0.95']].forEach(function (k) {
      stress[k[0]] = { el: input('f-stress-' + k[0].replace(/[._]/g, '-'), { placeholder: k[2] }), label: k[1] };
    });
    // A security scan (src/task/security/spec.rs): one target, endpoints "[METHOD] /path param ...".
    var scanTarget = input('f-scan-target', { type: 'url', placeholder: 'base URL of the site scanned' });
    var endpoints = h('textarea', { id: 'f-scan-endpoints', rows: 3, spellcheck: 'false', placeholder: '/search q\nGET /item id=7\nPOST /transfer to amount' });
    endpoints.value = saved['f-scan-endpoints'] || '';
    var SCANS = ['xss', 'sql_injection', 'csrf', 'headers', 'open_redirect'];
    var scanTypes = SCANS.map(function (k) {
      var cb = h('input', { type: 'checkbox', id: 'f-scan-' + k.replace(/_/g, '-'), value: k });
      cb.checked = !saved.scanTypes || saved.scanTypes.indexOf(k) >= 0;
      return cb;
    });
    var depth = select('f-scan-depth', [['quick', 'Quick'], ['deep', 'Deep']], 'quick');
    var scanRate = input('f-scan-rate', { inputmode: 'decimal', placeholder: '10' });
    var scanTimeout = input('f-scan-timeout', { placeholder: '10s' });
    var failOn = select('f-fail-on', [['', 'default (high)'], ['critical', 'critical'], ['high', 'high'], ['medium', 'medium'], ['low', 'low'], ['none', 'none']], '');
    // A user flow, the plan's `flow` in JSON or YAML; when given it replaces the targets.
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
    var flowField = field('Flow (JSON or YAML, instead of the targets)', flowText, P + 'flow',
      'steps: request (with capture, check), think, loop, group; variables {{ vu }}, {{ iteration }}, captures', 'wide');

    var typeField = field('Type', taskType, 'tasks[0].type');
    var thresholdsField = field('Thresholds (one a line)', thresholds, P + 'thresholds', 'e.g. p99_ms < 200, error_rate < 0.01, rps > 90', 'wide');
    thresholdsField.appendChild(h('label', { class: 'sub' }, [abortOnFail, ' stop the run when one fails']));
    var stressRow = h('div', { class: 'row', id: 'f-stress' }, Object.keys(stress).map(function (k) {
      return field(stress[k].label, stress[k].el, P + k);
    }));
    var scanTypesBox = h('div', { class: 'checks' }, scanTypes.map(function (cb) { return h('label', null, [cb, ' ' + cb.value.replace(/_/g, ' ')]); }));
    var scanRows = h('div', { id: 'f-scan' }, [
      h('div', { class: 'row' }, [field('Site', scanTarget, P + 'target', null, 'wide')]),
      h('div', { class: 'row' }, [field('Endpoints (one a line)', endpoints, P + 'endpoints', '[METHOD] /path param param=value …', 'wide')]),
      h('div', { class: 'row' }, [h('div', { class: 'field wide', 'data-field': P + 'scan_types' }, [h('label', { text: 'Checks' }), scanTypesBox]),
        field('Depth', depth, P + 'depth'), field('Rate limit (req/s)', scanRate, P + 'rate_limit_rps'),
        field('Timeout', scanTimeout, P + 'timeout'), field('Fail on', failOn, P + 'fail_on', 'findings this severe or worse fail the run')])
    ]);
    fields[P + 'scan_types'] = scanTypesBox.parentNode;
    var validate = h('button', { type: 'button', id: 'f-validate', text: 'Validate' });
    var validity = h('span', { class: 'hint', id: 'f-validity' });

    // The load fields (targets or flow, rate, users), of every type but a scan.
    var loadRows = h('div', { id: 'f-load' }, [
      h('div', { class: 'row' }, [targetsField]),
      h('div', { class: 'row' }, [flowField]),
      h('div', { class: 'row' }, [modelField, patternField, arrivalsField]),
      stressRow,
      h('div', { class: 'row' }, [baseField, peakField, durationField, usersField, thinkField]),
      h('div', { class: 'row' }, Object.keys(optFields).map(function (k) { return optFields[k]; })),
      h('div', { class: 'row' }, [stagesField])
    ]);
    var form = h('form', { class: 'panel form', id: 'new-execution', novalidate: true }, [
      h('div', { class: 'row' }, [field('Name', name, 'name', null, 'wide'), typeField]),
      scanRows,
      loadRows,
      h('div', { class: 'row' }, [thresholdsField]),
      general,
      h('div', { class: 'actions' }, [submit, validate, validity, h('span', { class: 'hint', text: 'Posts to /api/executions, then opens the execution.' })])
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
      var stressing = taskType.value === 'stress_test', scan = taskType.value === 'security_test';
      scanRows.hidden = !scan;
      loadRows.hidden = scan;
      stressRow.hidden = !stressing;
      // A stress test steps an open-model rate of its own: no model, pattern or duration.
      if (stressing) model.value = 'open';
      modelField.hidden = patternField.hidden = stressing;
      var closed = model.value === 'closed';
      var rated = !closed && !stressing;
      var p = PATTERNS[pattern.value] || PATTERNS.constant;
      pattern.disabled = closed;
      if (closed) pattern.value = 'constant';
      baseField.hidden = !rated;
      baseField.querySelector('label').textContent = p.base;
      peakField.hidden = !rated || !p.peak;
      if (p.peak) peakField.querySelector('label').textContent = p.peak;
      Object.keys(optFields).forEach(function (k) { optFields[k].hidden = !rated || p.opts.indexOf(k) < 0; });
      optFields.ramp_duration.parentNode.hidden = !rated || !p.opts.length;
      stagesField.hidden = !rated || pattern.value !== 'stages';
      stagesField.parentNode.hidden = stagesField.hidden;
      targetsField.hidden = targetsField.parentNode.hidden = flowText.value.trim() !== '';
      durationField.hidden = stressing || (!closed && pattern.value === 'stages');
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

    // The plan as the server takes it; `yaml`: the flow pasted as YAML (see yamlOf).
    function body() {
      var type = taskType.value;
      var p = type === 'security_test' ? scanParameters() : loadParameters(type);
      var ts = thresholds.value.split('\n').map(function (l) { return l.trim(); }).filter(Boolean);
      if (ts.length) p.thresholds = ts;
      if (ts.length && abortOnFail.checked) p.abort_on_fail = true;
      return { name: name.value.trim() || 'ui-run', tasks: [{ type: type, parameters: p }] };
    }

    function scanParameters() {
      var p = { target: scanTarget.value.trim(), endpoints: [] };
      endpoints.value.split('\n').forEach(function (line) {
        var words = line.trim().split(/\s+/).filter(Boolean);
        if (!words.length) return;
        var e = {};
        if (words[0].charAt(0) !== '/' && words.length > 1) e.method = words.shift();
        e.path = words.shift();
        e.params = words.map(function (w) {
          var at = w.indexOf('=');
          return at > 0 ? { name: w.slice(0, at), value: w.slice(at + 1) } : w;
        });
        p.endpoints.push(e);
      });
      var types = scanTypes.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.value; });
      if (types.length !== SCANS.length) p.scan_types = types;
      if (depth.value !== 'quick') p.depth = depth.value;
      if (scanRate.value.trim() !== '') p.rate_limit_rps = numeric(scanRate.value);
      if (scanTimeout.value.trim() !== '') p.timeout = numeric(scanTimeout.value);
      if (failOn.value) p.fail_on = failOn.value;
      return p;
    }

    function loadParameters(type) {
      var closed = type !== 'stress_test' && model.value === 'closed';
      var p = {};
      var flow = flowText.value.trim();
      if (flow) {
        // JSON goes as JSON; anything else as YAML (the body is then sent as YAML).
        try { p.flow = JSON.parse(flow); } catch (e) { p.flow = { yaml: flow }; }
      } else {
        p.targets = targetRows.map(targetOf);
      }
      if (type === 'stress_test') {
        Object.keys(stress).forEach(function (k) {
          var v = stress[k].el.value.trim();
          if (v === '') return;
          var keys = k.split('.');
          if (keys.length === 2) (p[keys[0]] = p[keys[0]] || {})[keys[1]] = numeric(v);
          else p[k] = numeric(v);
        });
        if (users.value.trim() !== '') p.concurrent_users = numeric(users.value);
        if (arrivals.value !== 'uniform') p.arrivals = arrivals.value;
        return p;
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
      return p;
    }

    // A plan whose flow was pasted as YAML, as one YAML document (POST with Content-Type:
    // application/yaml): every other value as JSON (which is YAML), the flow's lines
    // indented under `flow:`. `line`: the document's line of the flow's first line, to tell
    // the server's YAML errors in the flow's own lines.
    function yamlOf(b) {
      var task = b.tasks[0], p = task.parameters;
      var lines = ['name: ' + JSON.stringify(b.name), 'tasks:', '  - type: ' + JSON.stringify(task.type), '    parameters:'];
      Object.keys(p).forEach(function (k) { if (k !== 'flow') lines.push('      ' + JSON.stringify(k) + ': ' + JSON.stringify(p[k])); });
      lines.push('      flow:');
      var line = lines.length + 1;
      p.flow.yaml.split('\n').forEach(function (l) { lines.push('        ' + l); });
      return { text: lines.join('\n') + '\n', line: line };
    }

    // Posts the plan to `path`: as JSON, or as YAML when its flow was pasted as YAML.
    function post(path, b) {
      var flow = b.tasks[0].parameters.flow;
      if (!flow || typeof flow.yaml !== 'string') return api('POST', path, b);
      var y = yamlOf(b);
      return api('POST', path, y.text, 'application/yaml').catch(function (e) {
        // A YAML syntax error (400) is in the flow: its line counted from the flow's first.
        if (e.status === 400 && e.body) {
          e.body.field = P + 'flow';
          e.message = String(e.message).replace(/ at byte \d+/g, '').replace(/line (\d+)/g, function (m, n) { return 'line ' + Math.max(1, n - y.line + 1) + ' of the flow'; });
          e.body.message = e.message;
        }
        throw e;
      });
    }

    function save() {
      var s = {};
      [name, model, pattern, base, peak, duration, users, thinkTime, arrivals, flowText, taskType, thresholds,
        scanTarget, endpoints, depth, scanRate, scanTimeout, failOn].forEach(function (el) { s[el.id] = el.value; });
      Object.keys(stress).forEach(function (k) { s[stress[k].el.id] = stress[k].el.value; });
      s['f-abort-on-fail'] = abortOnFail.checked;
      s.scanTypes = scanTypes.filter(function (cb) { return cb.checked; }).map(function (cb) { return cb.value; });
      Object.keys(opts).forEach(function (k) { s[opts[k].id] = opts[k].value; });
      s.targets = targetRows.map(function (t) { return { url: t.url.value, method: t.method.value, headers: t.headers.value, body: t.body.value }; });
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
      var flow = b.tasks[0].parameters.flow;
      jsonBox.textContent = flow && typeof flow.yaml === 'string' ? yamlOf(b).text : JSON.stringify(b, null, 2);
      post('/api/executions/preview', b).then(function (r) {
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
      var closed = tasks.length && tasks.every(function (t) { return t.model !== 'open'; });
      var scan = tasks.length && tasks.every(function (t) { return t.model === 'scan'; });
      clear(previewChart).appendChild(chart({
        title: scan ? 'Security scan: no planned rate' : closed ? 'Closed model: no planned rate' : 'Planned requests per second',
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
      previewInfo.textContent = scan
        ? 'The scan probes each endpoint at most its rate limit, for about ' + seconds(r.duration_s) + '.'
        : closed
        ? 'Users loop for ' + seconds(r.duration_s) + ' as fast as responses come back.'
        : flowText.value.trim()
          ? num(planned) + ' flow iterations planned over ' + seconds(r.duration_s) + ' · peak ' + rps(peakRate) + ' iterations/s'
          : num(planned) + ' requests planned over ' + seconds(r.duration_s) + ' · peak ' + rps(peakRate) + ' req/s';
    }

    // Validate: the server checks the plan as the submit would (POST /api/executions/validate),
    // starting nothing; its errors show under their fields.
    validate.addEventListener('click', function () {
      changed.cancel();
      touched = true;
      layout();
      validity.textContent = 'checking…';
      post('/api/executions/validate', body()).then(function () {
        if (v.destroyed) return;
        clearErrors();
        validity.textContent = '✓ valid';
        validity.dataset.valid = 'true';
      }).catch(function (e) {
        if (v.destroyed) return;
        validity.textContent = 'not valid';
        validity.dataset.valid = 'false';
        showErrors(e);
      });
    });

    var changed = debounce(function () { validity.textContent = ''; delete validity.dataset.valid; layout(); save(); preview(); }, 250);
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
      post('/api/executions', b).then(function (r) {
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
