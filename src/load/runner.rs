//! A standalone run: a worker pool and a collector in this process, every task of a plan
//! started together, live progress each second, and the report at the end.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actors::run_collector::{CollectedTask, RunCollector};
use crate::actors::worker_pool::WorkerPool;
use crate::load::plan::{Model, TaskKind, TestPlan};
use crate::load::schedule::{Arrivals, Pattern};
use crate::messages::load::{GetProgress, GetReport, StartTask};
use crate::settings::LoadSettings;
use crate::stats::Snapshot;
use crate::stats::report::{Report, TaskInfo};

/// Time given to every worker to set up before the common start.
const START_DELAY: Duration = Duration::from_millis(100);

/// The run so far, once a second.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub duration: Duration,
    /// Requests planned and completed in the latest complete second (all tasks).
    pub planned_rps: f64,
    pub achieved_rps: f64,
    /// Corrected latency so far (the worst task's).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub completed: u64,
    pub errors: u64,
}

impl Progress {
    fn from_snapshots(elapsed: Duration, duration: Duration, snaps: &[Snapshot]) -> Progress {
        let mut p = Progress {
            elapsed,
            duration,
            ..Progress::default()
        };
        for s in snaps {
            if let Some(last) = &s.last_second {
                p.planned_rps += last.planned;
                p.achieved_rps += last.completed as f64;
            }
            p.p50_ms = p.p50_ms.max(s.latency_ms.p50);
            p.p99_ms = p.p99_ms.max(s.latency_ms.p99);
            p.completed += s.completed;
            p.errors += s.errors;
        }
        p
    }
}

/// Workers for a run: the configured number, else one per available core.
pub fn worker_count(settings: &LoadSettings) -> usize {
    settings
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn pattern_name(p: &Pattern) -> &'static str {
    match p {
        Pattern::Constant => "constant",
        Pattern::RampUp { .. } => "ramp_up",
        Pattern::RampDown { .. } => "ramp_down",
        Pattern::Spike { .. } => "spike",
        Pattern::Wave { .. } => "wave",
        Pattern::Random { .. } => "random",
        Pattern::Burst { .. } => "burst",
        Pattern::Stages { .. } => "stages",
    }
}

/// Runs every task of `plan` at once and returns the report. Must run inside an actix
/// `System`. `on_progress` is called about once a second. When `stop` turns true, no more
/// requests start; those in flight finish, and the report covers what ran (`interrupted`).
pub async fn run_plan(
    plan: &TestPlan,
    settings: &LoadSettings,
    stop: tokio::sync::watch::Receiver<bool>,
    mut on_progress: impl FnMut(&Progress),
) -> Report {
    let workers = worker_count(settings);
    let pool = WorkerPool::new(workers).start();
    let mut collected = Vec::new();
    let mut duration = Duration::ZERO;
    for task in &plan.tasks {
        let TaskKind::LoadTest(load) = &task.kind;
        let shards = crate::messages::load::shard_count(workers, load.concurrent_users);
        let rate = load.rate_plan();
        duration = duration.max(load.profile.duration);
        let open = load.model == Model::Open;
        let info = TaskInfo {
            name: task.name.clone(),
            model: if open { "open" } else { "closed" },
            pattern: pattern_name(&load.profile.pattern).to_string(),
            arrivals: match load.arrivals {
                Arrivals::Uniform => "uniform",
                Arrivals::Poisson => "poisson",
            },
            seed: load.profile.seed,
            concurrent_users: load.concurrent_users,
            duration_s: load.profile.duration.as_secs_f64(),
            planned_requests: open.then(|| rate.total().round() as u64),
            nodes: Vec::new(),
            lost: Vec::new(),
            reported_sent: Vec::new(),
        };
        let per_second: Box<dyn Fn(u64) -> f64 + Send> = if open {
            Box::new(move |k| rate.between(Duration::from_secs(k), Duration::from_secs(k + 1)))
        } else {
            Box::new(|_| 0.0)
        };
        let acc = crate::stats::TaskAccumulator::new(shards, per_second);
        collected.push(CollectedTask { info, acc });
    }
    let started_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (done_tx, mut done_rx) = oneshot::channel();
    let collector = RunCollector::new(plan.name.clone(), started_at_ms, collected, done_tx).start();

    let start = Instant::now() + START_DELAY;
    for (task_id, task) in plan.tasks.iter().enumerate() {
        let TaskKind::LoadTest(load) = &task.kind;
        let msg = StartTask {
            task_id,
            task: Arc::new(load.clone()),
            start,
            drain: settings.drain_timeout,
            allowlist: settings.allowed_targets.clone(),
            pool_size: settings.connection_pool_size as usize,
            sink: collector.clone().recipient(),
            stop: stop.clone(),
            share: None,
        };
        if pool.send(msg).await.is_err() {
            tracing::error!(task_id, "worker pool stopped before the task could start");
        }
    }

    let mut second = 1u64;
    loop {
        let tick = start + Duration::from_secs(second) + Duration::from_millis(50);
        tokio::select! {
            _ = &mut done_rx => break,
            _ = tokio::time::sleep_until(tick.into()) => {}
        }
        second += 1;
        if let Ok(snaps) = collector.send(GetProgress).await {
            on_progress(&Progress::from_snapshots(start.elapsed(), duration, &snaps));
        }
    }
    let mut report = collector
        .send(GetReport)
        .await
        .expect("collector lives until the run ends");
    if *stop.borrow() {
        report.interrupt(start.elapsed().as_secs_f64());
    }
    drop(pool);
    report
}
