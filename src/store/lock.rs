//! One orchestrator per data directory. Two orchestrators writing one database would each
//! recover the other's running executions as interrupted and overwrite each other's states, so
//! the one that starts second is refused. The lock is an exclusive advisory lock (`flock`) on
//! `mcpt.lock` beside the database: the kernel releases it when its holder exits, however it
//! exits, so a stale file never keeps a directory locked. The file holds the holder's process
//! id, read only to name it in the refusal.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;

/// The lock file inside the data directory.
pub const LOCK_FILE: &str = "mcpt.lock";

/// The data directory, held: dropping it lets another orchestrator open the directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

/// How often [`DirLock::acquire_waiting`] tries again.
const RETRY: Duration = Duration::from_millis(100);

impl DirLock {
    /// Takes `dir` (creating it if missing) for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        super::create_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let lock_err = |cause| StoreError::Lock {
            path: path.clone(),
            cause,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::InUse {
                    dir: dir.to_path_buf(),
                    holder: holder(&mut file),
                });
            }
            Err(TryLockError::Error(cause)) => return Err(lock_err(cause)),
        }
        file.set_len(0).map_err(lock_err)?;
        file.rewind().map_err(lock_err)?;
        writeln!(file, "{}", std::process::id()).map_err(lock_err)?;
        Ok(DirLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// [`DirLock::acquire`], waiting up to `wait` for a holder to let go (an orchestrator
    /// restarted right after a stop: the old process takes a moment to drain and exit).
    /// `waiting` is told once, with the refusal, when it has to wait. Blocks the thread: call
    /// it before any runtime starts.
    pub fn acquire_waiting(
        dir: &Path,
        wait: Duration,
        waiting: impl FnOnce(&StoreError),
    ) -> Result<DirLock, StoreError> {
        let end = Instant::now() + wait;
        let mut waiting = Some(waiting);
        loop {
            match DirLock::acquire(dir) {
                Err(e @ StoreError::InUse { .. }) if Instant::now() < end => {
                    if let Some(tell) = waiting.take() {
                        tell(&e);
                    }
                }
                done => return done,
            }
            #[allow(
                clippy::disallowed_methods,
                reason = "the CLI waits for an old process before any runtime starts"
            )]
            std::thread::sleep(RETRY);
        }
    }

    /// The directory held.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The process id the holder wrote, if it reads as one and (where `/proc` tells) that process
/// is alive: a lock taken by some other program leaves an old orchestrator's id in the file.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let proc = Path::new("/proc");
    let gone = proc.join("self").exists() && !proc.join(pid.to_string()).exists();
    (!gone).then_some(pid)
}

/// Says which process holds a directory, for [`StoreError::InUse`].
pub fn describe_holder(holder: &Option<u32>) -> String {
    holder.map_or_else(
        || "another process".into(),
        |pid| format!("process {pid} (an orchestrator)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_refused_naming_the_holder_and_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DirLock::acquire(&data).expect("a free directory");
        match DirLock::acquire(&data) {
            Err(StoreError::InUse { dir, holder }) => {
                assert_eq!(dir, data);
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("a held directory was taken: {other:?}"),
        }
        drop(first);
        let again = DirLock::acquire(&data).expect("free once dropped");
        drop(again);
        // A file left by a holder that is gone (its pid still written) locks nothing.
        std::fs::write(data.join(LOCK_FILE), "4194304\n").unwrap();
        let held = DirLock::acquire(&data).expect("a stale lock file locks nothing");
        // Held by something that did not write its id: the old id is not named.
        std::fs::write(data.join(LOCK_FILE), "4194304\n").unwrap();
        match DirLock::acquire(&data) {
            Err(StoreError::InUse { holder, .. }) => assert_eq!(holder, None),
            other => panic!("a held directory was taken: {other:?}"),
        }
        drop(held);
    }

    /// A holder that lets go while another waits: the waiter is told once, then takes it.
    #[test]
    fn a_waiter_takes_the_directory_once_its_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let refused = DirLock::acquire_waiting(dir.path(), Duration::ZERO, |_| {
            panic!("no wait asked for, none told")
        });
        assert!(
            matches!(refused, Err(StoreError::InUse { .. })),
            "{refused:?}"
        );
        let (told, heard) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            heard.recv().unwrap();
            drop(first);
        });
        let taken = DirLock::acquire_waiting(dir.path(), Duration::from_secs(600), |held| {
            assert!(matches!(held, StoreError::InUse { .. }), "{held:?}");
            told.send(()).unwrap();
        });
        holder.join().unwrap();
        assert_eq!(taken.unwrap().dir(), dir.path());
    }
}
