//! The `prometheus` check: GETs an application's metrics (the Prometheus text format), reads
//! the one sample its `series` selects ([`crate::exposition`]) and judges that value as a
//! custom metric is judged ([`CustomMetric::result`]): healthy, warning or critical by its
//! levels, the value as the result's `value`. No answer within the timeout, a status other
//! than 2xx (redirects are not followed), a body that is not the text format, no sample of
//! the series or several, and a value that is not a finite number are critical, with no value.

use std::time::Duration;

use super::custom::CustomMetric;
use super::{CheckKind, CheckResult, Status};
use crate::exposition::{self, Selector};
use crate::settings::MetricLevels;

/// The most of an exposition read (16 MiB); a longer one is an error.
pub const MAX_BODY: usize = 16 << 20;

/// One prometheus check to run.
#[derive(Debug, Clone, Copy)]
pub struct Read<'a> {
    pub name: &'a str,
    pub url: &'a url::Url,
    pub series: &'a Selector,
    pub levels: &'a MetricLevels,
    pub timeout: Duration,
}

impl Read<'_> {
    /// Scrapes and judges.
    pub async fn run(&self, client: &awc::Client, check_id: String) -> CheckResult {
        match self.fetch(client).await {
            Ok(text) => self.judge(&text, check_id),
            Err(why) => self.failed(check_id, why),
        }
    }

    /// The result of one exposition.
    pub fn judge(&self, text: &str, check_id: String) -> CheckResult {
        let value = match exposition::select(text, self.series) {
            Ok(v) if v.is_finite() => v,
            Ok(v) => {
                return self.failed(
                    check_id,
                    format!("{}: {v} is not a finite number", self.series),
                );
            }
            Err(why) => {
                return self.failed(check_id, format!("{} in {}: {why}", self.series, self.url));
            }
        };
        let l = self.levels;
        let metric = CustomMetric {
            name: self.name.to_string(),
            value,
            unit: l.unit.clone(),
            warning: l.warning,
            critical: l.critical,
            higher_is_worse: l.higher_is_worse,
        };
        metric.result(check_id, CheckKind::Prometheus)
    }

    fn failed(&self, check_id: String, message: String) -> CheckResult {
        CheckResult {
            check_id,
            name: self.name.to_string(),
            kind: CheckKind::Prometheus,
            status: Status::Critical,
            message,
            value: None,
            unit: self.levels.unit.clone(),
        }
    }

    /// The exposition's text, within the timeout.
    async fn fetch(&self, client: &awc::Client) -> Result<String, String> {
        let (url, timeout) = (self.url, self.timeout);
        let work = async {
            let mut resp = client
                .get(url.as_str())
                .insert_header((
                    "accept",
                    "text/plain;version=0.0.4;q=0.9,text/plain;q=0.5,*/*;q=0.1",
                ))
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| match e {
                    awc::error::SendRequestError::Timeout => {
                        format!("GET {url}: no answer within {timeout:?}")
                    }
                    e => format!("GET {url}: {e}"),
                })?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("GET {url}: status {status}, expected 2xx"));
            }
            let body = resp
                .body()
                .limit(MAX_BODY)
                .await
                .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
            String::from_utf8(body.to_vec())
                .map_err(|_| format!("GET {url}: the body is not UTF-8"))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| format!("GET {url}: no answer within {timeout:?}"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> MetricLevels {
        MetricLevels {
            unit: Some("jobs".into()),
            warning: Some(10.0),
            critical: Some(20.0),
            higher_is_worse: true,
        }
    }

    fn judge(text: &str, series: &str, levels: &MetricLevels) -> CheckResult {
        let url: url::Url = "http://127.0.0.1:9/metrics".parse().unwrap();
        let series: Selector = series.parse().unwrap();
        let read = Read {
            name: "queue",
            url: &url,
            series: &series,
            levels,
            timeout: Duration::from_secs(1),
        };
        read.judge(text, "prometheus:queue".into())
    }

    #[test]
    fn the_series_value_is_judged_like_a_custom_metric() {
        let text =
            "# TYPE q gauge\nq{queue=\"orders\"} 25\nq{queue=\"mail\"} 12\nq{queue=\"x\"} 3\n";
        let orders = judge(text, "q{queue=\"orders\"}", &levels());
        assert_eq!(
            (orders.status, orders.kind, orders.value),
            (Status::Critical, CheckKind::Prometheus, Some(25.0))
        );
        assert_eq!(orders.check_id, "prometheus:queue");
        assert_eq!(orders.unit.as_deref(), Some("jobs"));
        assert!(orders.message.contains("25 jobs"), "{}", orders.message);
        assert_eq!(
            judge(text, "q{queue=\"mail\"}", &levels()).status,
            Status::Warning
        );
        assert_eq!(
            judge(text, "q{queue=\"x\"}", &levels()).status,
            Status::Healthy
        );
        let lower = MetricLevels {
            warning: Some(5.0),
            critical: Some(4.0),
            higher_is_worse: false,
            ..levels()
        };
        assert_eq!(
            judge(text, "q{queue=\"x\"}", &lower).status,
            Status::Critical
        );
    }

    #[test]
    fn no_single_finite_sample_is_critical_and_says_why() {
        let text = "q{queue=\"orders\"} 25\nq{queue=\"mail\"} 12\nr NaN\n";
        for (series, says) in [
            ("nope", "no such metric"),
            ("q{queue=\"none\"}", "no sample matches"),
            ("q", "2 samples match"),
            ("r", "not a finite number"),
        ] {
            let r = judge(text, series, &levels());
            assert_eq!((r.status, r.value), (Status::Critical, None), "{series}");
            assert!(r.message.contains(says), "{series}: {}", r.message);
        }
        let r = judge("q{queue=\"orders\" 25\n", "q", &levels());
        assert_eq!(r.status, Status::Critical);
        assert!(r.message.contains("line 1"), "{}", r.message);
    }

    /// A server on 127.0.0.1:0 answering `/metrics` with `text` and `/gone` with 404.
    fn exporter(text: &'static str) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
        use actix_web::{HttpResponse, web};
        super::super::checks::loopback_server(move |cfg| {
            cfg.route(
                "/metrics",
                web::get().to(move || async move {
                    HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(text)
                }),
            )
            .route("/gone", web::get().to(HttpResponse::NotFound));
        })
    }

    #[actix_rt::test]
    async fn a_scrape_reads_the_series_and_a_failed_one_is_critical() {
        let (addr, handle) = exporter("app_queue_depth{queue=\"orders\"} 12\n");
        let client = super::super::checks::http_client();
        let series: Selector = "app_queue_depth{queue=\"orders\"}".parse().unwrap();
        let l = levels();
        // A port bound and released: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let scrape = |addr: std::net::SocketAddr, path: &str| {
            let url: url::Url = format!("http://{addr}{path}").parse().unwrap();
            let (client, series, l) = (client.clone(), series.clone(), l.clone());
            async move {
                let read = Read {
                    name: "queue",
                    url: &url,
                    series: &series,
                    levels: &l,
                    timeout: Duration::from_secs(5),
                };
                read.run(&client, "prometheus:queue".into()).await
            }
        };
        let r = scrape(addr, "/metrics").await;
        assert_eq!(
            (r.status, r.value),
            (Status::Warning, Some(12.0)),
            "{}",
            r.message
        );
        let r = scrape(addr, "/gone").await;
        assert_eq!((r.status, r.value), (Status::Critical, None));
        assert!(r.message.contains("404"), "{}", r.message);
        let r = scrape(closed, "/metrics").await;
        assert_eq!(
            (r.status, r.value),
            (Status::Critical, None),
            "{}",
            r.message
        );
        assert_eq!(r.unit.as_deref(), Some("jobs"), "its unit, for the UI");
        handle.stop(false).await;
    }
}
