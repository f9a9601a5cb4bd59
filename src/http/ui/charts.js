// mcpt charts: small SVG line charts, shared by the live web UI and the HTML report.
// Plain browser JavaScript: no dependencies, no network, no build step.
//
//   McptCharts.line({title, unit, x: [seconds], series: [{name, values, dashed?, color?}],
//                    width?: 640, height?: 220, xUnit?: 's', marks?: [{x, label}]})
//                    -> "<svg class="mcpt-chart" ...>...</svg>"  (a mark: a vertical line at x)
//   McptCharts.escape(s) -> s with & < > " ' escaped for HTML text and attributes
//   McptCharts.ticks(min, max, count, minStep?) -> {min, max, step, values}: rounded axis ticks
//   McptCharts.format(v) -> a short label for a number (1.5k, 0.25, 12)
//   McptCharts.palette -> the default colours (Okabe-Ito, colour-blind safe)
//
// Values may be null (a gap in the line). Non-finite numbers are treated as null, so no
// attribute ever holds NaN or Infinity. Each x gets a hover column whose <title> lists every
// series' value at that x.
(function (root) {
  'use strict';

  var PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#F0E442'];
  var ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

  function escape(s) {
    return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, function (c) {
      return ESC[c];
    });
  }

  function finite(v) {
    return typeof v === 'number' && isFinite(v);
  }

  // A number for an attribute: finite, two decimals at most.
  function num(v) {
    if (!finite(v)) return '0';
    var r = Math.round(v * 100) / 100;
    return String(r === 0 ? 0 : r);
  }

  // The "nice" step (1, 2, 2.5 or 5 times a power of ten) that splits span into about count parts.
  function niceStep(span, count) {
    if (!(span > 0) || !isFinite(span)) return 1;
    var raw = span / Math.max(1, count);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (raw <= steps[i] * mag) return steps[i] * mag;
    }
    return 10 * mag;
  }

  function ticks(min, max, count, minStep) {
    if (!finite(min)) min = 0;
    if (!finite(max)) max = min + 1;
    if (max < min) { var t = min; min = max; max = t; }
    if (max === min) { max = min + 1; }
    var step = niceStep(max - min, count || 4);
    if (finite(minStep) && step < minStep) step = minStep;
    var lo = Math.floor(min / step + 1e-9) * step;
    var hi = Math.ceil(max / step - 1e-9) * step;
    if (hi <= lo) hi = lo + step;
    var values = [];
    for (var v = lo, i = 0; v <= hi + step * 1e-6 && i < 50; v += step, i++) {
      values.push(Math.round(v / step) * step);
    }
    return { min: lo, max: hi, step: step, values: values };
  }

  function format(v) {
    if (!finite(v)) return '-';
    var a = Math.abs(v);
    if (a >= 1e9) return trim(v / 1e9) + 'G';
    if (a >= 1e6) return trim(v / 1e6) + 'M';
    if (a >= 1e4) return trim(v / 1e3) + 'k';
    if (a >= 100 || a === 0) return String(Math.round(v));
    if (a >= 10) return trim(v, 1);
    if (a >= 1) return trim(v, 2);
    return trim(v, 3);
  }

  function trim(v, digits) {
    var s = v.toFixed(digits === undefined ? 1 : digits);
    if (s.indexOf('.') >= 0) s = s.replace(/0+$/, '').replace(/\.$/, '');
    return s === '-0' ? '0' : s;
  }

  function line(opts) {
    opts = opts || {};
    var W = finite(opts.width) && opts.width >= 160 ? opts.width : 640;
    var H = finite(opts.height) && opts.height >= 120 ? opts.height : 220;
    var title = opts.title || '';
    var unit = opts.unit || '';
    var xs = Array.isArray(opts.x) ? opts.x : [];
    var xunit = typeof opts.xUnit === 'string' ? opts.xUnit : 's';
    var series = (Array.isArray(opts.series) ? opts.series : []).map(function (s, i) {
      s = s || {};
      var values = Array.isArray(s.values) ? s.values : [];
      return {
        name: s.name === undefined ? 'series ' + (i + 1) : String(s.name),
        values: xs.map(function (_, j) { return finite(values[j]) ? values[j] : null; }),
        dashed: !!s.dashed,
        color: typeof s.color === 'string' && /^#[0-9a-fA-F]{3,8}$/.test(s.color) ? s.color : PALETTE[i % PALETTE.length]
      };
    });

    // Margins: title on top, y labels on the left, x labels and legend below.
    var ml = 48, mr = 14, mt = 30, mb = 46;
    var pw = W - ml - mr, ph = H - mt - mb;

    var xmin = Infinity, xmax = -Infinity, ymin = 0, ymax = -Infinity, any = false;
    xs.forEach(function (x, j) {
      if (!finite(x)) return;
      var used = series.some(function (s) { return s.values[j] !== null; });
      if (!used) return;
      any = true;
      if (x < xmin) xmin = x;
      if (x > xmax) xmax = x;
      series.forEach(function (s) {
        var v = s.values[j];
        if (v !== null) {
          if (v > ymax) ymax = v;
          if (v < ymin) ymin = v;
        }
      });
    });
    if (!any) { xmin = 0; xmax = 1; ymax = 1; }
    if (xmax === xmin) { xmin -= 0.5; xmax += 0.5; }
    if (!(ymax > ymin)) ymax = ymin + 1;
    var yt = ticks(ymin, ymax, 4);
    // Whole seconds get whole-second ticks.
    var whole = xs.every(function (x) { return !finite(x) || Math.round(x) === x; });
    var xt = ticks(xmin, xmax, 6, whole ? 1 : undefined);
    // The x axis spans the data (not the rounded ticks), so lines reach both edges.
    var xv = xt.values.filter(function (v) { return v >= xmin - 1e-9 && v <= xmax + 1e-9; });

    function px(x) { return ml + (x - xmin) / (xmax - xmin) * pw; }
    function py(y) { return mt + ph - (y - yt.min) / (yt.max - yt.min) * ph; }

    var out = [];
    out.push('<svg class="mcpt-chart" data-series="' + series.length +
      '" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + ' ' + H +
      '" role="img" aria-label="' + escape(title) + '" style="max-width:100%;height:auto;font:11px sans-serif">');
    out.push('<title>' + escape(title) + (unit ? ' (' + escape(unit) + ')' : '') + '</title>');
    out.push('<rect x="0" y="0" width="' + W + '" height="' + H + '" fill="#fff"/>');
    out.push('<text x="' + ml + '" y="16" font-size="13" font-weight="bold" fill="#222">' + escape(title) + '</text>');
    if (unit) {
      out.push('<text x="' + (ml - 6) + '" y="' + (mt - 8) + '" text-anchor="end" fill="#555">' + escape(unit) + '</text>');
    }

    // Grid and y ticks.
    yt.values.forEach(function (v) {
      var y = num(py(v));
      out.push('<line x1="' + ml + '" x2="' + (ml + pw) + '" y1="' + y + '" y2="' + y + '" stroke="#e4e4e4"/>');
      out.push('<text x="' + (ml - 6) + '" y="' + y + '" dy="0.32em" text-anchor="end" fill="#555">' + escape(format(v)) + '</text>');
    });
    // X ticks.
    xv.forEach(function (v) {
      var x = num(px(v));
      out.push('<line x1="' + x + '" x2="' + x + '" y1="' + (mt + ph) + '" y2="' + (mt + ph + 4) + '" stroke="#888"/>');
      out.push('<text x="' + x + '" y="' + (mt + ph + 15) + '" text-anchor="middle" fill="#555">' + escape(format(v)) + '</text>');
    });
    out.push('<text x="' + (ml + pw) + '" y="' + (mt + ph + 28) + '" text-anchor="end" fill="#555">' + escape(xunit) + '</text>');
    out.push('<line x1="' + ml + '" x2="' + (ml + pw) + '" y1="' + num(mt + ph) + '" y2="' + num(mt + ph) + '" stroke="#888"/>');
    out.push('<line x1="' + ml + '" x2="' + ml + '" y1="' + mt + '" y2="' + num(mt + ph) + '" stroke="#888"/>');

    if (!any) {
      out.push('<text x="' + num(ml + pw / 2) + '" y="' + num(mt + ph / 2) + '" text-anchor="middle" fill="#888">no data</text>');
    }

    // Marks (a live change of the run, say): a dotted vertical line at x, its label on hover.
    (Array.isArray(opts.marks) ? opts.marks : []).forEach(function (m) {
      if (!m || !finite(m.x) || m.x < xmin || m.x > xmax) return;
      var x = num(px(m.x));
      out.push('<line class="mcpt-mark" x1="' + x + '" x2="' + x + '" y1="' + mt + '" y2="' + num(mt + ph) +
        '" stroke="#CC79A7" stroke-width="2" stroke-dasharray="2 3"><title>' + escape(m.label || '') + '</title></line>');
    });

    // Lines: a gap (null) starts a new segment; a point alone gets a dot.
    series.forEach(function (s, i) {
      var d = [], pen = false, lone = [];
      xs.forEach(function (x, j) {
        var v = s.values[j];
        if (!finite(x) || v === null) { pen = false; return; }
        var prevOk = pen;
        var nextOk = j + 1 < xs.length && finite(xs[j + 1]) && s.values[j + 1] !== null;
        d.push((pen ? 'L' : 'M') + num(px(x)) + ' ' + num(py(v)));
        if (!prevOk && !nextOk) lone.push([px(x), py(v)]);
        pen = true;
      });
      if (d.length) {
        out.push('<path class="mcpt-series" data-index="' + i + '" d="' + d.join(' ') + '" fill="none" stroke="' + s.color +
          '" stroke-width="2" stroke-linejoin="round"' + (s.dashed ? ' stroke-dasharray="6 4"' : '') + '/>');
      }
      lone.forEach(function (p) {
        out.push('<circle cx="' + num(p[0]) + '" cy="' + num(p[1]) + '" r="3" fill="' + s.color + '"/>');
      });
    });

    // Hover: one transparent column per x, its <title> listing every series there.
    if (any) {
      var pts = [];
      xs.forEach(function (x, j) { if (finite(x)) pts.push([x, j]); });
      pts.sort(function (a, b) { return a[0] - b[0]; });
      pts.forEach(function (p, k) {
        var left = k === 0 ? ml : (px(pts[k - 1][0]) + px(p[0])) / 2;
        var right = k === pts.length - 1 ? ml + pw : (px(p[0]) + px(pts[k + 1][0])) / 2;
        var lines = [format(p[0]) + ' ' + xunit];
        series.forEach(function (s) {
          var v = s.values[p[1]];
          lines.push(s.name + ': ' + (v === null ? '-' : format(v)) + (unit ? ' ' + unit : ''));
        });
        out.push('<rect class="mcpt-hover" x="' + num(left) + '" y="' + mt + '" width="' + num(Math.max(0, right - left)) +
          '" height="' + num(ph) + '" fill="transparent"><title>' + escape(lines.join('\n')) + '</title></rect>');
      });
    }

    // Legend, below the x labels.
    var lx = ml, ly = H - 8;
    series.forEach(function (s) {
      var label = escape(s.name);
      out.push('<line x1="' + lx + '" x2="' + (lx + 18) + '" y1="' + (ly - 4) + '" y2="' + (ly - 4) + '" stroke="' + s.color +
        '" stroke-width="2"' + (s.dashed ? ' stroke-dasharray="6 4"' : '') + '/>');
      out.push('<text x="' + (lx + 22) + '" y="' + ly + '" fill="#222">' + label + '</text>');
      lx += 22 + Math.min(200, 7 * s.name.length) + 16;
    });

    out.push('</svg>');
    return out.join('');
  }

  root.McptCharts = {
    line: line,
    escape: escape,
    ticks: ticks,
    format: format,
    palette: PALETTE.slice()
  };
})(typeof globalThis !== 'undefined' ? globalThis : this);
