//! The process gauges Prometheus's client libraries export under the same
//! names (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …),
//! read from /proc/self when a scrape asks, so dashboards made for any
//! Prometheus-instrumented service work unchanged. Linux only: elsewhere
//! they are left out.

use std::fmt::Write as _;

use crate::authority::expiry::{family, COUNTER, GAUGE};

/// Appends the process families that /proc/self can tell.
pub fn render(out: &mut String) {
    let Some(p) = read() else { return };
    let mut gauge = |name: &str, kind: &str, help: &str, value: f64| {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    };
    gauge("process_cpu_seconds_total", COUNTER, "Total user and system CPU time spent in seconds.", p.cpu_seconds);
    gauge("process_resident_memory_bytes", GAUGE, "Resident memory size in bytes.", p.resident_bytes);
    gauge("process_virtual_memory_bytes", GAUGE, "Virtual memory size in bytes.", p.virtual_bytes);
    gauge("process_start_time_seconds", GAUGE, "Start time of the process since unix epoch in seconds.", p.start_time);
    gauge("process_open_fds", GAUGE, "Number of open file descriptors.", p.open_fds);
    if let Some(max) = p.max_fds {
        gauge("process_max_fds", GAUGE, "Maximum number of open file descriptors.", max);
    }
}

struct Process {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time: f64,
    open_fds: f64,
    max_fds: Option<f64>,
}

fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // proc(5): the fields after the command name, which is in parentheses
    // and may itself hold spaces and parentheses.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    // Counted from field 3 (state) at index 0: utime 14, stime 15,
    // starttime 22, vsize 23, rss 24 (in pages).
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    // SAFETY: sysconf reads a constant of the system and has no
    // preconditions.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let (ticks, page) = (ticks.max(1) as f64, page.max(1) as f64);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    Some(Process {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        resident_bytes: field(24)? * page,
        virtual_bytes: field(23)?,
        start_time: boot + field(22)? / ticks,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as f64,
        max_fds: std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| l.lines().find(|l| l.starts_with("Max open files"))?.split_whitespace().nth(3)?.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_gauges_are_read_from_proc() {
        let p = super::read().expect("/proc/self on Linux");
        assert!(
            p.resident_bytes > 1e6 && p.virtual_bytes >= p.resident_bytes,
            "{} {}",
            p.resident_bytes,
            p.virtual_bytes
        );
        assert!(p.open_fds >= 3.0 && p.max_fds.is_some_and(|m| m >= p.open_fds));
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
        assert!(p.start_time <= now + 1.0 && p.start_time > now - 86_400.0 * 30.0, "{}", p.start_time);
        assert!(p.cpu_seconds >= 0.0);
    }
}
