//! A process's CPU time and resident memory, read from Linux's
//! `/proc/PID/stat` (utime + stime, fields 14 and 15, proc(5)) and
//! `/proc/PID/status` (`VmRSS`): [`ProcessStats`] for the load tool's view
//! of a node, [`CpuMeter`] for a node's own CPU in the cluster registry.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// `/proc` counts CPU time in USER_HZ ticks, which the kernel's ABI fixes
/// at 100 per second whatever the kernel's own tick rate.
const TICKS_PER_SECOND: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process {pid} to measure")]
    Missing { pid: u32 },
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ProcessStats {
    pid: u32,
    dir: PathBuf,
}

impl ProcessStats {
    /// The process `pid`, if it exists and its figures can be read.
    pub fn open(pid: u32) -> Result<Self, ProcessError> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        if !dir.is_dir() {
            return Err(ProcessError::Missing { pid });
        }
        let process = Self { pid, dir };
        process.cpu_time()?;
        process.rss_kib()?;
        Ok(process)
    }

    /// User plus system CPU time used so far, all threads.
    pub fn cpu_time(&self) -> Result<Duration, ProcessError> {
        let (path, text) = self.read("stat")?;
        let ticks = parse_cpu_ticks(&text).ok_or_else(|| ProcessError::Unreadable {
            path,
            reason: "no utime and stime fields".to_owned(),
        })?;
        Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
    }

    /// Resident set size in KiB.
    pub fn rss_kib(&self) -> Result<u64, ProcessError> {
        let (path, text) = self.read("status")?;
        parse_rss_kib(&text).ok_or_else(|| ProcessError::Unreadable {
            path,
            reason: "no VmRSS line".to_owned(),
        })
    }

    fn read(&self, name: &str) -> Result<(String, String), ProcessError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((path.display().to_string(), text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ProcessError::Missing { pid: self.pid })
            }
            Err(e) => Err(ProcessError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

/// A process's CPU use from one reading to the next.
#[derive(Debug)]
pub struct CpuMeter {
    process: ProcessStats,
    last: Mutex<Option<(Instant, Duration)>>,
}

impl CpuMeter {
    /// This process's meter, where `/proc` can be read.
    pub fn own() -> Option<Self> {
        let process = ProcessStats::open(std::process::id()).ok()?;
        Some(Self {
            process,
            last: Mutex::new(None),
        })
    }

    /// CPU used since the previous call, in % of one core (two cores busy
    /// read 200); `None` on the first call, or when `/proc` fails.
    pub fn percent(&self) -> Option<u32> {
        let now = (Instant::now(), self.process.cpu_time().ok()?);
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let before = last.replace(now)?;
        Some(share_percent(
            now.1.saturating_sub(before.1),
            now.0.saturating_duration_since(before.0),
        ))
    }
}

/// `cpu` spent over `wall`, in % of one core.
fn share_percent(cpu: Duration, wall: Duration) -> u32 {
    if wall.is_zero() {
        return 0;
    }
    let percent = (cpu.as_secs_f64() / wall.as_secs_f64() * 100.0).round();
    // `as` saturates: a share beyond u32 cannot happen, and NaN reads 0.
    percent as u32
}

/// utime + stime from a `stat` line. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_a_command_name_with_spaces() {
        let stat = "4242 (tokio (w) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 75 0 0 20 0 5 0 1000 123456 789 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn a_share_of_cpu_is_in_percent_of_one_core() {
        let ms = Duration::from_millis;
        assert_eq!(share_percent(ms(500), ms(1000)), 50);
        assert_eq!(share_percent(ms(3000), ms(2000)), 150);
        assert_eq!(share_percent(ms(10), ms(0)), 0);
        let meter = CpuMeter::own().expect("this process has /proc");
        assert_eq!(
            meter.percent(),
            None,
            "the first reading has nothing before it"
        );
        assert!(meter.percent().is_some());
    }

    #[test]
    fn rss_is_read_in_kib() {
        let status = "Name:\tcallgate\nVmPeak:\t  99999 kB\nVmRSS:\t   23456 kB\nThreads:\t5\n";
        assert_eq!(parse_rss_kib(status), Some(23456));
        assert_eq!(parse_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_measured_and_a_missing_one_is_named() {
        let me = ProcessStats::open(std::process::id()).unwrap();
        assert!(me.rss_kib().unwrap() > 0);
        assert!(matches!(
            ProcessStats::open(u32::MAX),
            Err(ProcessError::Missing { pid: u32::MAX })
        ));
    }
}
