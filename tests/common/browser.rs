//! A headless Chromium driven over WebDriver (fantoccini), for the web UI and the HTML report.
//!
//! [`Browser::start`] spawns `/usr/bin/chromedriver` on a free loopback port, in a process group
//! of its own, and opens a session on `/usr/bin/chromium --headless=new` with a fresh profile in
//! a temporary folder. Dropping the [`Browser`] ends the session and then kills that process
//! group (chromedriver and the Chromium it started) by its id, also when the test panicked.
//! The calls block: the session runs on a current-thread runtime owned by the value, so a test
//! calls them from plain `#[test]` code (not from inside another async runtime).
//!
//! Screenshots go to `target/test-output/<test name>/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's switches for every test: headless, no sandbox (tests run as root), and nothing
/// that reaches out on its own (updates, sync, QUIC, background fetches).
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
    "--disable-breakpad",
    "--disable-crash-reporter",
];

/// Switches that leave the browser no network at all: every proxied request goes to a closed
/// port and every host name fails to resolve. For pages that must be self-contained.
pub const NO_NETWORK_ARGS: &[&str] = &[
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
];

/// How long a single WebDriver step may take before the test fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// `target/test-output/<test>/`, created; its path is printed.
pub fn output_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-output").join(test);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    println!("test output folder: {}", dir.display());
    dir
}

/// Panics (never skips) when the browser or its driver is not installed.
fn require_tools() {
    let missing: Vec<&str> = [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]
        .into_iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, pkg)| pkg)
        .collect();
    assert!(
        missing.is_empty(),
        "the browser tests need {CHROMIUM} and {CHROMEDRIVER}: install the Debian packages {} \
         (`.ci/run` installs them: packages chromium, chromium-driver)",
        missing.join(", ")
    );
}

/// chromedriver in a process group of its own, killed (the whole group, by its id) on drop.
struct Driver {
    child: Option<Child>,
    port: u16,
}

impl Driver {
    fn spawn(log: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let log_file = std::fs::File::create(log).expect("chromedriver log file");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {CHROMEDRIVER}: {e}"));
        Driver {
            child: Some(child),
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().map(|s| s.is_some()).unwrap_or(true))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The group holds chromedriver and the Chromium processes it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A WebDriver session on headless Chromium. Fields drop in order: the session is closed in
/// `Drop`, then the driver's process group is killed, then the profile folder is removed.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Driver,
    _profile: tempfile::TempDir,
    /// `target/test-output/<test name>/`.
    pub out_dir: PathBuf,
}

impl Browser {
    /// A browser for the test `test` (names its output folder), with the standard switches.
    pub fn start(test: &str) -> Browser {
        Browser::start_with(test, &[])
    }

    /// A browser with extra Chromium switches (e.g. [`NO_NETWORK_ARGS`]).
    pub fn start_with(test: &str, extra_args: &[&str]) -> Browser {
        require_tools();
        let out_dir = output_dir(test);
        let profile = tempfile::tempdir().expect("profile folder");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver session");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
        args.extend(extra_args.iter().map(|s| s.to_string()));
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let log = out_dir.join("chromedriver.log");
        // The port was free a moment ago; if another process took it, chromedriver exits and
        // we try a new one.
        let mut last_error = String::new();
        for _ in 0..3 {
            let mut driver = Driver::spawn(&log);
            let url = driver.url();
            let client = rt.block_on(async {
                let end = Instant::now() + STEP_TIMEOUT;
                loop {
                    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                    match ClientBuilder::new(connector)
                        .capabilities(caps.clone())
                        .connect(&url)
                        .await
                    {
                        Ok(c) => return Ok(c),
                        Err(e) => {
                            if driver.exited() || Instant::now() >= end {
                                return Err(e.to_string());
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
            match client {
                Ok(client) => {
                    let browser = Browser {
                        rt,
                        client: Some(client),
                        driver,
                        _profile: profile,
                        out_dir,
                    };
                    browser.run(|c| async move { c.set_window_size(1280, 900).await });
                    return browser;
                }
                Err(e) => last_error = e,
            }
        }
        panic!(
            "no WebDriver session on headless Chromium: {last_error}; see {}",
            log.display()
        );
    }

    fn client(&self) -> Client {
        self.client.clone().expect("the session is open")
    }

    /// Runs one WebDriver step, failing the test if it errs or takes over [`STEP_TIMEOUT`].
    fn run<T, F, Fut>(&self, step: F) -> T
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let client = self.client();
        match self
            .rt
            .block_on(async { tokio::time::timeout(STEP_TIMEOUT, step(client)).await })
        {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("WebDriver: {e}"),
            Err(_) => panic!("WebDriver step took over {STEP_TIMEOUT:?}"),
        }
    }

    /// Opens `url` (http://127.0.0.1:... or file://...) and waits for the page to load.
    pub fn open(&self, url: &str) {
        let url = url.to_string();
        self.run(|c| async move { c.goto(&url).await });
    }

    /// Runs JavaScript (a function body: `return ...;`) and returns its result.
    pub fn eval(&self, script: &str) -> Value {
        let script = script.to_string();
        self.run(|c| async move { c.execute(&script, vec![]).await })
    }

    /// Runs JavaScript with arguments (`arguments[0]`, ...).
    pub fn eval_with(&self, script: &str, args: Vec<Value>) -> Value {
        let script = script.to_string();
        self.run(|c| async move { c.execute(&script, args).await })
    }

    /// Polls the JavaScript expression `condition` every 50 ms until it is truthy; panics with
    /// `what` after `timeout`.
    pub fn wait_js(&self, condition: &str, timeout: Duration, what: &str) {
        let script = format!("return !!({condition});");
        let end = Instant::now() + timeout;
        loop {
            if self.eval(&script) == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < end,
                "waited {timeout:?} for {what} ({condition})"
            );
            self.rt.block_on(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
            });
        }
    }

    /// Waits until an element matches the CSS `selector`.
    pub fn wait_for(&self, selector: &str, timeout: Duration) {
        let cond = format!("document.querySelector({}) !== null", js_string(selector));
        self.wait_js(&cond, timeout, &format!("an element matching {selector}"));
    }

    /// Number of elements matching `selector`.
    pub fn count(&self, selector: &str) -> usize {
        let n = self.eval(&format!(
            "return document.querySelectorAll({}).length;",
            js_string(selector)
        ));
        n.as_u64().unwrap_or(0) as usize
    }

    /// The visible text of the first element matching `selector`. Found and read in one
    /// script: the UI re-renders live, and a handle found in one WebDriver step can be stale
    /// by the next.
    pub fn text(&self, selector: &str) -> String {
        let v = self.eval(&format!(
            "const e = document.querySelector({}); return e === null ? null : e.innerText;",
            js_string(selector)
        ));
        match v {
            Value::String(s) => s,
            _ => panic!("no element matches {selector}"),
        }
    }

    /// Clicks the first element matching `selector`.
    pub fn click(&self, selector: &str) {
        let selector = selector.to_string();
        self.run(|c| async move { c.find(Locator::Css(&selector)).await?.click().await });
    }

    /// Clears the input matching `selector` and types `value` into it.
    pub fn fill(&self, selector: &str, value: &str) {
        let (selector, value) = (selector.to_string(), value.to_string());
        self.run(|c| async move {
            let e = c.find(Locator::Css(&selector)).await?;
            e.clear().await?;
            e.send_keys(&value).await
        });
    }

    /// A PNG of the viewport, written to `out_dir/name`; its path is printed and returned.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.run(|c| async move { c.screenshot().await });
        let path = self.out_dir.join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("screenshot: {}", path.display());
        path
    }

    /// A PNG of the whole page (the window grown to the page's height, at most `max_height`).
    pub fn screenshot_page(&self, name: &str, max_height: u32) -> PathBuf {
        let h = self
            .eval("return Math.ceil(document.documentElement.scrollHeight);")
            .as_u64()
            .unwrap_or(900) as u32;
        let h = h.clamp(900, max_height);
        self.run(|c| async move { c.set_window_size(1280, h + 140).await });
        self.screenshot(name)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends Chromium cleanly; the driver's group is killed right after in any case.
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
    }
}

/// A JavaScript string literal for `s`.
pub fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}
