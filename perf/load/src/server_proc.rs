//! The server processes' figures from `/proc/<pid>`: their CPU time and
//! resident memory, read around each measured phase (the publish phase, the
//! connect storm). Several processes (the nodes of a cluster, each with its
//! `--server-pid`) count as one server: their figures are summed, so that
//! the CPU per delivery is what the whole cluster spent on each.

/// utime + stime of a process, in nanoseconds.
pub fn proc_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(") ")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1_000_000_000 / ticks)
}

/// Resident set size of a process, in bytes.
fn proc_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime + stime over all of `pids`, in nanoseconds.
pub fn cpu_ns(pids: &[u32]) -> Option<u64> {
    sum_over(pids, proc_cpu_ns)
}

/// Resident set size over all of `pids`, in bytes.
pub fn rss_bytes(pids: &[u32]) -> Option<u64> {
    sum_over(pids, proc_rss_bytes)
}

/// `figure` summed over `pids`; `None` for no pid, or when one process's
/// figure cannot be read (a part of a sum would be a wrong figure).
fn sum_over(pids: &[u32], figure: fn(u32) -> Option<u64>) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| figure(pid)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_summed_over_the_processes_or_none() {
        let me = std::process::id();
        let one = rss_bytes(&[me]).expect("this process's RSS");
        let two = rss_bytes(&[me, me]).expect("twice this process's RSS");
        // The RSS may move between the reads.
        assert!(two >= one && two <= 4 * one, "{one} {two}");
        assert_eq!(cpu_ns(&[]), None);
        assert_eq!(rss_bytes(&[me, u32::MAX]), None, "a process that is gone");
    }
}
