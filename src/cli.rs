//! The `mcpt` command line: argument parsing and the commands, kept out of the binary so the
//! binary only maps the result to an exit code.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::{Args, Parser, Subcommand};

use crate::http::target::{CertSource, TargetStats, TlsOptions, Transport, server, server_tls};
use crate::run::{Progress, run_plan};
use crate::settings::{Settings, SettingsError};
use crate::task::report::Report;
use crate::task::{self, TestPlan};

mod outputs;
mod remote;

/// Exit code for an invalid plan, configuration or command line.
pub const EXIT_INVALID: u8 = 2;
/// Exit code of a run in which a threshold failed, after its report.
pub const EXIT_THRESHOLDS: u8 = 3;
/// Exit code of a run stopped with Ctrl-C (128 + SIGINT), after its report.
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long `mcpt orchestrator` waits for another process to let go of its data directory.
const DATA_DIR_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    name = "mcpt",
    version,
    about = "Distributed load, stress and performance testing"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a test plan on this machine and print a report.
    Run(RunArgs),
    /// Serve a small, fast HTTP target for demos, tests and benchmarks.
    Target(TargetArgs),
    /// Serve the REST API and the cluster link; executions run on the nodes that join.
    Orchestrator(ServeArgs),
    /// Join an orchestrator and generate the load it plans.
    Node(NodeArgs),
    /// An orchestrator and one local node in one process, to try the REST API with no setup.
    Up(ServeArgs),
    /// An MCP server on stdin/stdout (for desktop assistants) that drives an orchestrator.
    Mcp(McpArgs),
}

#[derive(Args, Debug)]
pub struct McpArgs {
    /// The orchestrator's REST address.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub orchestrator: url::Url,
    /// The orchestrator's API token, sent on every call (default: api.token, MCP_API_TOKEN).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The guardrails (mcp.*, load_generation.allowed_targets) come from this configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (default: orchestrator.host).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on, 0 for any free one (default: orchestrator.port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Folder of the database (default: orchestrator.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The orchestrator to join, e.g. http://127.0.0.1:8080 (default: node.orchestrator).
    #[arg(long, value_name = "URL")]
    pub orchestrator: Option<url::Url>,
    /// Address of the node's own REST API (default: node.host).
    #[arg(long)]
    pub host: Option<String>,
    /// Port of the node's REST API, 0 for any free one (default: node.port).
    #[arg(long)]
    pub port: Option<u16>,
    /// The node's id in the cluster (default: node.id, else the host name and port).
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// YAML configuration file (see config/default.yaml for every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one configuration key, e.g. --set load_generation.workers=2 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The test plan, YAML or JSON.
    pub plan: PathBuf,
    /// Also write the JSON report here.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the report as one self-contained HTML page here (charts, no network).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Also write the verdicts as JUnit XML here, for CI test reporters.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write timeline.csv (per second) and requests.csv (per request) in this folder.
    #[arg(long, value_name = "DIR")]
    pub csv: Option<PathBuf>,
    /// Start an `mcpt target` on the (loopback) address of the plan's first target first.
    #[arg(long)]
    pub start_target: bool,
    /// No progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run on a cluster: submit the plan to this orchestrator and follow it live.
    #[arg(long, value_name = "URL")]
    pub orchestrator: Option<url::Url>,
    /// The orchestrator's API token (default: api.token, MCP_API_TOKEN).
    #[arg(long, value_name = "TOKEN", requires = "orchestrator")]
    pub token: Option<String>,
    /// How long a lost connection to the orchestrator is retried before giving up (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = remote::duration_arg)]
    pub reconnect_timeout: std::time::Duration,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("tls_mode").args(["tls", "tls_cert"]).multiple(true))]
pub struct TargetArgs {
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// Server threads; 0 means one per available core.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Serve HTTPS with a certificate made at start: a fresh CA signs a leaf for localhost,
    /// 127.0.0.1, ::1 and the --tls-name names.
    #[arg(long)]
    pub tls: bool,
    /// Write the generated CA's certificate (PEM) to this file, for clients to trust.
    #[arg(
        long,
        value_name = "PATH",
        requires = "tls",
        conflicts_with = "tls_cert"
    )]
    pub tls_ca_out: Option<PathBuf>,
    /// Another name (DNS name or IP address) for the generated certificate; repeatable.
    #[arg(
        long = "tls-name",
        value_name = "NAME",
        requires = "tls",
        conflicts_with = "tls_cert"
    )]
    pub tls_names: Vec<String>,
    /// Serve HTTPS with this certificate chain (PEM) instead of a generated one.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTP/2 beside HTTP/1.1: offered by ALPN over TLS, with prior knowledge (h2c) in
    /// clear.
    #[arg(long)]
    pub h2: bool,
    /// Demand a client certificate signed by a CA of this PEM file (mTLS); needs TLS.
    #[arg(long, value_name = "CA_PATH", requires = "tls_mode")]
    pub require_client_cert: Option<PathBuf>,
}

impl TargetArgs {
    /// The TLS the flags ask for, if any.
    fn tls_options(&self) -> Option<TlsOptions> {
        let cert = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ if self.tls => CertSource::Generated {
                extra_names: self.tls_names.clone(),
            },
            _ => return None,
        };
        Some(TlsOptions {
            cert,
            client_ca: self.require_client_cert.clone(),
            h2: self.h2,
        })
    }
}

/// Runs the parsed command; the binary turns the code into the process's exit status.
pub fn main(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Target(args) => target(args),
        Command::Orchestrator(args) => serve(args, false),
        Command::Node(args) => node(args),
        Command::Up(args) => serve(args, true),
        Command::Mcp(args) => mcp(args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        // A damaged store, or one another orchestrator holds, is a configuration the
        // operator must fix, like an invalid one.
        let operator = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<crate::store::StoreError>(),
                Some(
                    crate::store::StoreError::Corrupt { .. }
                        | crate::store::StoreError::InUse { .. }
                )
            )
        });
        if operator {
            ExitCode::from(EXIT_INVALID)
        } else {
            ExitCode::FAILURE
        }
    })
}

fn load_settings(args: &ConfigArgs) -> Result<Settings, SettingsError> {
    let env: HashMap<String, String> = std::env::vars().collect();
    Settings::load(args.config.as_deref(), &env, &args.overrides)
}

/// Logs to stderr at `level` (`MCPT_LOG` overrides, e.g. `MCPT_LOG=debug`). `quiet_cluster`:
/// the in-process cluster of `mcpt run` only speaks up for warnings.
fn init_tracing(level: tracing::Level, quiet_cluster: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPT_LOG").unwrap_or_else(|_| {
        let mut f = format!("{level},actix_server=warn,rmcp=warn");
        if quiet_cluster {
            f.push_str(",mcp_testing::actors=warn,mcp_testing::store=warn");
        }
        tracing_subscriber::EnvFilter::new(f)
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Lets the process open as many sockets as the system allows (10,000 users need 10,000),
/// with room for them in its descriptor table from the start.
fn raise_fd_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open-file limit");
    }
    // Grown once here, before any load worker runs, rather than socket by socket under load.
    #[cfg(unix)]
    if let Err(e) = crate::http::limits::reserve_fd_table(crate::http::limits::FD_TABLE_AHEAD) {
        tracing::warn!(error = %e, "could not grow the file-descriptor table ahead");
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let settings = match load_settings(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    init_tracing(settings.orchestrator.log_level, true);
    let (doc, plan) = match task::read_file(&args.plan, &settings.load_generation) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    raise_fd_limit();
    let _target = if args.start_target {
        Some(start_target_for(&plan)?)
    } else {
        None
    };

    if let Some(url) = &args.orchestrator {
        return remote::run(&args, url, &settings, &doc);
    }
    let progress = ProgressView::new(args.quiet);
    let report = actix::System::new().block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        actix_rt::spawn(stop_on_ctrl_c(stop_tx));
        run_plan(&doc, &plan, &settings, stop_rx, |p| progress.show(p)).await
    });
    progress.finish();
    let report = report?;
    Ok(ExitCode::from(finish_run(&args, &report)?))
}

/// What a local and a remote run do with the report: print it, write `--output` and
/// `--html`, and answer the exit code it calls for.
fn finish_run(args: &RunArgs, report: &Report) -> anyhow::Result<u8> {
    print!("{}", report.to_text());
    std::io::stdout().flush().ok();
    outputs::write_outputs(report, args)?;
    if report.summary.interrupted && report.summary.stopped_by.is_none() {
        return Ok(EXIT_INTERRUPTED);
    }
    if report.summary.thresholds_passed == Some(false) {
        return Ok(EXIT_THRESHOLDS);
    }
    Ok(0)
}

/// The live progress of a run: a bar and its line on a terminal, a line a second otherwise,
/// nothing with `--quiet`.
struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl ProgressView {
    fn new(quiet: bool) -> ProgressView {
        let interactive = !quiet && std::io::stderr().is_terminal();
        let bar = interactive.then(|| {
            let bar = indicatif::ProgressBar::new(1000);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {msg}").expect("static template"),
            );
            bar
        });
        ProgressView { bar, quiet }
    }

    fn show(&self, p: &Progress) {
        let line = progress_line(p);
        match &self.bar {
            Some(bar) => {
                let frac = p.elapsed.as_secs_f64() / p.duration.as_secs_f64().max(1e-9);
                bar.set_position((frac.min(1.0) * 1000.0) as u64);
                bar.set_message(line);
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// First Ctrl-C: start no more requests, let those in flight finish, report what ran.
/// Second Ctrl-C: quit at once.
async fn stop_on_ctrl_c(stop: tokio::sync::watch::Sender<bool>) {
    if let Err(e) = tokio::signal::ctrl_c().await {
        // Without a handler Ctrl-C ends the process as usual; the run itself goes on.
        tracing::warn!(error = %e, "cannot listen for Ctrl-C");
        std::future::pending::<()>().await;
    }
    eprintln!("\nstopping: finishing the requests in flight (Ctrl-C again to quit now)");
    let _ = stop.send(true);
    if tokio::signal::ctrl_c().await.is_ok() {
        #[allow(clippy::disallowed_methods, reason = "a second Ctrl-C means quit now")]
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }
}

fn progress_line(p: &Progress) -> String {
    format!(
        "{:>5.0}s/{:.0}s  planned {:>8.0} {}  achieved {:>8.0} rps (average {:.1})  p50 {:>8.2} ms  p99 {:>8.2} ms  errors {}",
        p.elapsed.as_secs_f64(),
        p.duration.as_secs_f64(),
        p.planned_rps,
        // A flow plans iterations; its requests are several per iteration.
        if p.flow { "it/s" } else { "rps" },
        p.achieved_rps,
        p.average_rps,
        p.p50_ms,
        p.p99_ms,
        p.errors
    )
}

/// A target server running on its own thread until dropped.
pub struct TargetGuard {
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    pub addr: SocketAddr,
    pub stats: Arc<TargetStats>,
}

impl TargetGuard {
    /// Starts a plain HTTP/1.1 target on `listener` in a thread of its own.
    pub fn start(listener: TcpListener, workers: usize) -> anyhow::Result<TargetGuard> {
        TargetGuard::start_with(listener, workers, Transport::default())
    }

    /// Starts a target speaking `transport` on `listener` in a thread of its own.
    pub fn start_with(
        listener: TcpListener,
        workers: usize,
        transport: Transport,
    ) -> anyhow::Result<TargetGuard> {
        let addr = listener.local_addr()?;
        let stats = Arc::new(TargetStats::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_stats = stats.clone();
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(async move {
                match server(listener, workers, thread_stats, &transport) {
                    Ok(srv) => {
                        let _ = tx.send(Ok(srv.handle()));
                        let _ = srv.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
        });
        let handle = rx.recv().map_err(|_| anyhow!("target thread died"))??;
        Ok(TargetGuard {
            handle,
            thread: Some(thread),
            addr,
            stats,
        })
    }
}

impl Drop for TargetGuard {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // The server stops from any thread; wait for it so the port is free afterwards.
        let stopper = std::thread::spawn(move || {
            actix::System::new().block_on(handle.stop(false));
        });
        let _ = stopper.join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `--start-target`: a target on the address of the plan's first target, which must be a
/// loopback address with an explicit port.
fn start_target_for(plan: &TestPlan) -> anyhow::Result<TargetGuard> {
    let url = plan.tasks[0].kind.first_target();
    let addrs: Vec<SocketAddr> = url
        .socket_addrs(|| None)
        .context("resolving the first target")?;
    let addr = addrs
        .into_iter()
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| anyhow!("--start-target needs a loopback first target, not {url}"))?;
    let listener = TcpListener::bind(addr).with_context(|| {
        format!("--start-target: cannot listen on {addr} (is something already there?)")
    })?;
    let guard = TargetGuard::start(listener, 1)?;
    eprintln!("target listening on http://{addr}");
    Ok(guard)
}

/// The target's transport from its flags, and what to say about it beside the listening line;
/// a bad certificate file or an unwritable --tls-ca-out is an error for exit code 2.
fn target_transport(args: &TargetArgs) -> anyhow::Result<(Transport, String)> {
    let Some(options) = args.tls_options() else {
        let protocols = if args.h2 {
            "HTTP/1.1 and h2c"
        } else {
            "HTTP/1.1"
        };
        return Ok((Transport::Clear { h2: args.h2 }, protocols.to_string()));
    };
    let tls = server_tls(&options)?;
    let mut about = if args.h2 {
        "HTTP/1.1 and h2 by ALPN"
    } else {
        "HTTP/1.1"
    }
    .to_string();
    if let (Some(path), Some(pem)) = (&args.tls_ca_out, &tls.ca_pem) {
        std::fs::write(path, pem)
            .with_context(|| format!("--tls-ca-out {}: cannot write the CA", path.display()))?;
        about += &format!(", CA certificate in {}", path.display());
    }
    if let Some(ca) = &options.client_ca {
        about += &format!(", client certificates signed by {}", ca.display());
    }
    Ok((Transport::Tls(tls.config), about))
}

fn target(args: TargetArgs) -> anyhow::Result<ExitCode> {
    init_tracing(tracing::Level::INFO, false);
    raise_fd_limit();
    let (transport, about) = match target_transport(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    let scheme = match transport {
        Transport::Tls(_) => "https",
        Transport::Clear { .. } => "http",
    };
    eprintln!("mcpt target listening on {scheme}://{addr} ({workers} workers, {about})");
    actix::System::new().block_on(async move {
        crate::http::limits::spawn_memory_trim();
        let srv = server(
            listener,
            workers,
            Arc::new(TargetStats::default()),
            &transport,
        )?;
        let handle = srv.handle();
        actix_rt::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            handle.stop(true).await;
        });
        srv.await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Settings for a serving command, or the exit code of a configuration error.
fn serve_settings(args: &ConfigArgs) -> Result<Settings, ExitCode> {
    match load_settings(args) {
        Ok(s) => Ok(s),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// Runs a server until Ctrl-C or SIGTERM (`signals`, from [`shutdown_signal`]), then stops it
/// gracefully.
async fn until_signal(
    server: actix_web::dev::Server,
    signals: impl std::future::Future<Output = ()> + 'static,
) -> anyhow::Result<()> {
    let stop = server.handle();
    actix_rt::spawn(async move {
        signals.await;
        stop.stop(true).await;
    });
    server.await.context("http server")
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: call it before saying "listening", so that a signal sent as
/// soon as the process says it is up is handled (a SIGTERM that came before the handler
/// killed the node outright, with no goodbye).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(int) => {}
            _ = wait(term) => {}
        }
    }
}

/// `mcpt orchestrator` and `mcpt up` (with a local node).
fn serve(args: ServeArgs, with_node: bool) -> anyhow::Result<ExitCode> {
    let mut settings = match serve_settings(&args.config) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if let Some(h) = args.host {
        settings.orchestrator.host = h;
    }
    if let Some(p) = args.port {
        settings.orchestrator.port = p;
    }
    if let Some(d) = args.data_dir {
        settings.orchestrator.data_dir = d;
    }
    init_tracing(settings.orchestrator.log_level, false);
    raise_fd_limit();
    let host = settings.orchestrator.host.clone();
    if let Err(e) = crate::app::check_exposure(&settings, &host) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let listener = crate::app::bind_listener(&host, settings.orchestrator.port)
        .with_context(|| format!("cannot listen on {host}:{}", settings.orchestrator.port))?;
    let addr = listener.local_addr()?;
    // Announced by discovery: the port bound, which differs from the one asked for when 0.
    settings.orchestrator.port = addr.port();
    // Held until the process ends. A restart right after a stop waits for the old process.
    let data_lock = crate::store::DirLock::acquire_waiting(
        &settings.orchestrator.data_dir,
        DATA_DIR_WAIT,
        |held| eprintln!("{held}; waiting up to {DATA_DIR_WAIT:?} for it to exit"),
    )
    .context("cannot open the orchestrator's store")?;
    let settings = Arc::new(settings);
    actix::System::new().block_on(async move {
        let handle = crate::app::start_orchestrator(settings.clone(), &data_lock)
            .context("cannot open the orchestrator's store")?;
        if with_node {
            let connector = crate::app::local_connector(handle.registry.clone());
            let node = crate::app::start_node(
                settings.clone(),
                "local".into(),
                addr.to_string(),
                Some(connector),
            );
            // No node endpoint to scrape: the orchestrator serves the node's series.
            handle.registry.metrics.include_node(node.metrics);
        }
        let server = crate::app::serve_orchestrator(handle, listener)?;
        let what = if with_node {
            "mcpt up (orchestrator and a local node)"
        } else {
            "mcpt orchestrator"
        };
        let signals = shutdown_signal();
        eprintln!("{what} listening on http://{addr}");
        until_signal(server, signals).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `mcpt node`.
fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let mut settings = match serve_settings(&args.config) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if let Some(h) = args.host {
        settings.node.host = h;
    }
    if let Some(p) = args.port {
        settings.node.port = p;
    }
    init_tracing(settings.orchestrator.log_level, false);
    raise_fd_limit();
    let orchestrator = args.orchestrator.or(settings.node.orchestrator.clone());
    let d = &settings.service_discovery;
    let can_discover =
        d.dns_name.is_some() || (d.multicast_enabled && settings.cluster.secret.is_some());
    if orchestrator.is_none() && !can_discover {
        eprintln!(
            "error: no orchestrator to join: pass --orchestrator URL, set node.orchestrator, \
             set service_discovery.dns_name, or set cluster.secret for multicast discovery"
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if let Err(e) = crate::app::check_node_exposure(&settings, &settings.node.host) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let listener = crate::app::bind_listener(&settings.node.host, settings.node.port)
        .with_context(|| {
            format!(
                "cannot listen on {}:{}",
                settings.node.host, settings.node.port
            )
        })?;
    let addr = listener.local_addr()?;
    let id = args
        .id
        .or(settings.node.id.clone())
        .unwrap_or_else(|| default_node_id(addr.port()));
    let url = orchestrator
        .as_ref()
        .map(crate::actors::agent_relay::cluster_url);
    let settings = Arc::new(settings);
    actix::System::new().block_on(async move {
        let node = crate::app::start_node(
            settings.clone(),
            id.clone(),
            addr.to_string(),
            url.clone().map(crate::actors::node_agent::Connector::Ws),
        );
        crate::app::start_node_discovery(&node, settings.clone(), &id, addr.port());
        let agent = node.agent.clone();
        let server = crate::app::serve_node(node, settings, listener)?;
        let joining = match &url {
            Some(u) => format!("joining {u}"),
            None => "looking for an orchestrator (multicast or DNS)".into(),
        };
        let signals = shutdown_signal();
        eprintln!("mcpt node {id} listening on http://{addr}, {joining}");
        let served = until_signal(server, signals).await;
        // Stopped: say goodbye, so the orchestrator shows this node `left`, not failed.
        if let Some(agent) = agent.get() {
            let leave = agent.send(crate::actors::node_agent::Leave);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), leave).await;
        }
        served
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The host name and the REST port: unique per machine and port.
fn default_node_id(port: u16) -> String {
    format!("{}-{port}", crate::app::host_name())
}

/// `mcpt mcp`: MCP over stdio; stdout carries the protocol only, logs go to stderr.
fn mcp(args: McpArgs) -> anyhow::Result<ExitCode> {
    let settings = match serve_settings(&args.config) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    init_tracing(settings.orchestrator.log_level, false);
    if !matches!(args.orchestrator.scheme(), "http") || args.orchestrator.host().is_none() {
        eprintln!(
            "error: --orchestrator must be the orchestrator's http:// address, e.g. http://127.0.0.1:8080, got {}",
            args.orchestrator
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let token = args.token.or_else(|| settings.api.token.clone());
    let base = args.orchestrator.as_str().trim_end_matches('/').to_string();
    tracing::info!(orchestrator = %base, "mcp server on stdio");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(crate::mcp::stdio::run(&base, token, Arc::new(settings)))?;
    Ok(ExitCode::SUCCESS)
}
