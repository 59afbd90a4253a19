//! Start-up marks for the machine bench: with the log filter enabling
//! target `boot_time` at `info` (`OPENHOOK_LOG=warn,boot_time=info`), the
//! emulator logs when it was exec'd, when its KVM VM exists and when the
//! first vCPU exit came back, as `CLOCK_MONOTONIC` nanoseconds, the clock
//! a launcher can read too (docs/performance.md). Reading it is a vDSO
//! call; nothing is logged with the default filter.
#![forbid(unsafe_code)]

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// Logs mark `name` taken at `t_ns`.
pub fn mark_at(name: &'static str, t_ns: u64) {
    tracing::info!(target: "boot_time", mark = name, t_ns);
}

/// Logs mark `name` now.
pub fn mark(name: &'static str) {
    if tracing::enabled!(target: "boot_time", tracing::Level::INFO) {
        mark_at(name, now_ns());
    }
}
