//! Broker process figures from /proc: resident memory (VmRSS) and CPU time
//! (utime + stime, all threads, including exited ones).

use anyhow::{Context, Result};

/// Resident set size of `pid` in bytes, from /proc/<pid>/status VmRSS.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("empty VmRSS")?
        .parse()
        .context("VmRSS not a number")?;
    Ok(kb * 1024)
}

/// CPU time (user + system) consumed so far by `pid`, in microseconds.
pub fn cpu_micros(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) * 1_000_000 / clock_ticks())
}

/// Clock ticks per second (USER_HZ), the unit of utime/stime.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new
/// soft limit. Broker processes started afterwards inherit it.
pub fn raise_fd_limit() -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit");
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit with cur <= max.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setrlimit");
        }
    }
    Ok(lim.rlim_cur)
}

/// A snapshot of the broker's and the load generator's CPU time, to take
/// deltas over a run.
#[derive(Clone, Copy)]
pub struct CpuMark {
    broker: u64,
    bench: u64,
}

/// CPU microseconds spent since a [`CpuMark`].
#[derive(Clone, Copy, Debug)]
pub struct CpuSpent {
    pub broker_us: u64,
    /// This process (all client groups).
    pub bench_us: u64,
}

impl CpuMark {
    pub fn take(pid: u32) -> Result<CpuMark> {
        Ok(CpuMark {
            broker: cpu_micros(pid)?,
            bench: cpu_micros(std::process::id())?,
        })
    }

    pub fn elapsed(self, pid: u32) -> Result<CpuSpent> {
        Ok(CpuSpent {
            broker_us: cpu_micros(pid)?.saturating_sub(self.broker),
            bench_us: cpu_micros(std::process::id())?.saturating_sub(self.bench),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(super::rss_bytes(pid).unwrap() > 0);
        super::cpu_micros(pid).unwrap();
    }
}
