//! The HTML report: `mcpt run --html` writes one self-contained file that headless Chromium
//! renders with no network; the orchestrator serves it and compares two executions.

mod common;

use std::time::Duration;

use common::browser::{Browser, NO_NETWORK_ARGS};

const WAIT: Duration = Duration::from_secs(30);

/// charts.js on its own, in the browser: edge cases render without NaN, text is escaped.
#[test]
fn charts_render_edge_cases_in_the_browser() {
    let b = Browser::start_with("charts", NO_NETWORK_ARGS);
    let page = b.out_dir.join("charts.html");
    let js = std::fs::read_to_string(common::repo_path("src/http/ui/charts.js")).unwrap();
    std::fs::write(
        &page,
        format!(
            "<!doctype html><meta charset=utf-8><title>charts</title><body><div id=c></div>\
             <script>{js}</script><script>\
             var C = McptCharts, out = [];\
             out.push(C.line({{title: 'rate <b>', unit: 'req/s', x: [0,1,2,3,4], series: [\
               {{name: 'planned', values: [50,50,50,50,50], dashed: true}},\
               {{name: '<\\/script><i>x</i>', values: [48, null, NaN, 51, 49]}}]}}));\
             out.push(C.line({{title: 'empty', unit: 'ms', x: [], series: []}}));\
             out.push(C.line({{title: 'one point', unit: 'ms', x: [7], series: [{{name: 'p50', values: [3.5]}}]}}));\
             out.push(C.line({{title: 'zeros', unit: 'ms', x: [0,1], series: [{{name: 'p99', values: [0,0]}}]}}));\
             document.getElementById('c').innerHTML = out.join('');\
             </script>"
        ),
    )
    .unwrap();
    b.open(&format!("file://{}", page.display()));
    b.wait_js(
        "document.querySelectorAll('svg.mcpt-chart').length === 4",
        WAIT,
        "4 charts",
    );
    let html = b.eval("return document.getElementById('c').innerHTML;");
    let html = html.as_str().unwrap();
    assert!(!html.contains("NaN") && !html.contains("Infinity") && !html.contains("undefined"));
    assert_eq!(b.count("#c i"), 0, "a series name is text, not markup");
    assert_eq!(b.count("#c b"), 0, "a title is text, not markup");
    assert_eq!(
        b.eval("return document.querySelector('svg.mcpt-chart').dataset.series;"),
        "2"
    );
    // 48 at x=0 (a gap follows) and the single point 3.5 stand alone: each is a dot.
    assert_eq!(b.count("svg.mcpt-chart circle"), 2, "lone points are dots");
    assert_eq!(
        b.eval("return performance.getEntriesByType('resource').length;"),
        0
    );
    b.screenshot("charts.png");
}
