//! Reads the machine's metrics into a [`Sample`] with sysinfo, refreshing only what is read
//! (DESIGN §10: a full refresh costs 13–19 ms, CPU and memory alone about 0.1 ms).
//!
//! - CPU: global usage of all cores. sysinfo computes it from the time since the previous
//!   refresh, so the [`Sampler`] keeps its `System` across samples; the first sample, taken
//!   less than `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` (200 ms) after [`Sampler::new`], may read
//!   low, and samples closer together than that repeat the previous figure.
//! - Memory: RAM only; used is total minus available.
//! - Disk: the disk whose mount point holds the given path (the current directory for
//!   [`Sampler::new`], where the node keeps its data), the longest mount point that is a
//!   prefix of it; only that disk's storage figures are refreshed. Without such a disk, the
//!   sum over all listed disks.
//! - Network: bytes received and sent per second over every interface but loopback (names
//!   starting with `lo`), from the counters' change since the previous sample.
//! - Load average: the one-minute figure (0 where the platform has none).
//!
//! Measured (`benches/sysinfo.rs`, 2-core VM): a sample costs about 1 ms (0.5 ms of it the
//! interfaces' counters, most of the rest the CPU times), a full refresh about 6.5 ms.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System,
};

use super::{Sample, percent};
use crate::clock::unix_ms;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("system metrics are unavailable: {0}")]
    System(#[from] sysinfo::Error),
}

pub struct Sampler {
    system: System,
    /// `None`: the platform lists no disks (disk figures read 0).
    disks: Option<Disks>,
    /// The index in `disks` of the disk holding the path; `None`: the sum of all.
    disk: Option<usize>,
    /// `None`: the platform lists no interfaces (rates read 0).
    networks: Option<Networks>,
    net_refreshed: Instant,
}

fn cpu_kind() -> CpuRefreshKind {
    CpuRefreshKind::nothing().with_usage()
}

fn memory_kind() -> MemoryRefreshKind {
    MemoryRefreshKind::nothing().with_ram()
}

fn disk_kind() -> DiskRefreshKind {
    DiskRefreshKind::nothing().with_storage()
}

impl Sampler {
    /// A sampler whose disk is the one holding the current directory.
    pub fn new() -> Result<Sampler, SampleError> {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Sampler::for_path(&dir)
    }

    /// A sampler whose disk is the one holding `path`. Lists the disks and interfaces once
    /// and takes the first CPU reading.
    pub fn for_path(path: &Path) -> Result<Sampler, SampleError> {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(cpu_kind())
                .with_memory(memory_kind()),
        )?;
        let disks = Disks::new_with_refreshed_list_specifics(disk_kind())
            .inspect_err(|e| tracing::warn!(error = %e, "cannot list disks; disk use reads 0"))
            .ok();
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let disk = disks.as_ref().and_then(|d| {
            d.iter()
                .enumerate()
                .filter(|(_, disk)| path.starts_with(disk.mount_point()))
                .max_by_key(|(_, disk)| disk.mount_point().as_os_str().len())
                .map(|(i, _)| i)
        });
        let networks = Networks::new_with_refreshed_list()
            .inspect_err(|e| tracing::warn!(error = %e, "cannot list interfaces; rates read 0"))
            .ok();
        Ok(Sampler {
            system,
            disks,
            disk,
            networks,
            net_refreshed: Instant::now(),
        })
    }

    /// The mount point of the disk sampled, `None` when the sum of all is (for the tests).
    #[cfg(test)]
    pub fn disk_mount_point(&self) -> Option<&Path> {
        let disks = self.disks.as_ref()?;
        Some(disks.get(self.disk?)?.mount_point())
    }

    /// Reads the metrics now.
    pub fn sample(&mut self) -> Sample {
        self.system.refresh_cpu_specifics(cpu_kind());
        self.system.refresh_memory_specifics(memory_kind());
        let (disk_used, disk_total) = self.disk();
        let (rx, tx) = self.network();
        let memory_total = self.system.total_memory();
        let memory_used = self.system.used_memory().min(memory_total);
        let cpu = f64::from(self.system.global_cpu_usage());
        Sample {
            at_ms: unix_ms(),
            cpu_percent: if cpu.is_finite() {
                cpu.clamp(0.0, 100.0)
            } else {
                0.0
            },
            cpu_cores: u32::try_from(self.system.cpus().len()).unwrap_or(u32::MAX),
            memory_used,
            memory_total,
            memory_percent: percent(memory_used, memory_total),
            disk_used,
            disk_total,
            disk_percent: percent(disk_used, disk_total),
            net_rx_bytes_per_s: rx,
            net_tx_bytes_per_s: tx,
            load_average_1m: System::load_average().map_or(0.0, |l| l.one),
        }
    }

    /// Used and total bytes of the sampled disk (or all disks).
    fn disk(&mut self) -> (u64, u64) {
        let Some(disks) = self.disks.as_mut() else {
            return (0, 0);
        };
        let used = |d: &sysinfo::Disk| d.total_space().saturating_sub(d.available_space());
        match self.disk {
            Some(i) => {
                let Some(d) = (&mut *disks).into_iter().nth(i) else {
                    return (0, 0);
                };
                d.refresh_specifics(disk_kind());
                (used(d), d.total_space())
            }
            None => {
                disks.refresh_specifics(false, disk_kind());
                disks
                    .iter()
                    .fold((0, 0), |(u, t), d| (u + used(d), t + d.total_space()))
            }
        }
    }

    /// Received and sent bytes per second since the previous call.
    fn network(&mut self) -> (f64, f64) {
        let Some(networks) = self.networks.as_mut() else {
            return (0.0, 0.0);
        };
        networks.refresh(true);
        let now = Instant::now();
        let secs = now.duration_since(self.net_refreshed).as_secs_f64();
        self.net_refreshed = now;
        let (rx, tx) = networks
            .iter()
            .filter(|(name, _)| !name.to_string_lossy().starts_with("lo"))
            .fold((0u64, 0u64), |(rx, tx), (_, data)| {
                (
                    rx.saturating_add(data.received()),
                    tx.saturating_add(data.transmitted()),
                )
            });
        if secs <= 0.0 {
            return (0.0, 0.0);
        }
        (rx as f64 / secs, tx as f64 / secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_reads_this_machine() {
        let mut s = Sampler::new().expect("sysinfo works here");
        let a = s.sample();
        assert!(a.cpu_cores >= 1, "{a:?}");
        assert!(
            a.memory_total > 0 && a.memory_used <= a.memory_total,
            "{a:?}"
        );
        assert!(a.disk_total > 0 && a.disk_used <= a.disk_total, "{a:?}");
        assert!((0.0..=100.0).contains(&a.cpu_percent), "{a:?}");
        assert!((0.0..=100.0).contains(&a.memory_percent), "{a:?}");
        assert!((0.0..=100.0).contains(&a.disk_percent), "{a:?}");
        assert!(a.net_rx_bytes_per_s >= 0.0 && a.net_tx_bytes_per_s >= 0.0);
        assert!(a.at_ms > 0);
        let b = s.sample();
        assert!(b.at_ms >= a.at_ms);
        assert_eq!(b.memory_total, a.memory_total);
        assert_eq!(b.disk_total, a.disk_total, "the same disk every time");
    }

    #[test]
    fn the_disk_is_the_one_holding_the_path() {
        let listed = Disks::new_with_refreshed_list().unwrap();
        let root_listed = listed.iter().any(|d| d.mount_point() == Path::new("/"));
        let s = Sampler::for_path(Path::new("/")).unwrap();
        assert_eq!(s.disk_mount_point() == Some(Path::new("/")), root_listed);
        let dir = std::env::current_dir().unwrap().canonicalize().unwrap();
        let holding = listed
            .iter()
            .filter(|d| dir.starts_with(d.mount_point()))
            .map(|d| d.mount_point().as_os_str().len())
            .max();
        let s = Sampler::for_path(&dir).unwrap();
        assert_eq!(
            s.disk_mount_point().map(|m| m.as_os_str().len()),
            holding,
            "the longest mount point holding {dir:?}"
        );
    }
}
