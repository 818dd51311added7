//! A scheduler hint for the one thread whose delay every event stream shares.
//!
//! Why: the event fan-out thread works for well under a millisecond per event, but on a
//! saturated machine it waited for a busy worker's whole time slice before it ran, and every
//! stream waited with it. Linux's EEVDF scheduler (6.12 and later) lets a thread ask for a
//! shorter slice, which lets it run ahead of a longer-sliced thread when it wakes up; no
//! privilege is needed, its share of the CPU is unchanged, and older kernels ignore the
//! request. Measured with `cargo bench --bench sse` (5,000 streams): an event's way to its
//! first stream, p99 over events, from 9–12 ms to 5–7.5 ms.

use std::time::Duration;

/// The slice asked for: a fan-out to thousands of subscribers takes longer, and may be
/// preempted in between, but each event starts going out at once.
pub const SHORT_SLICE: Duration = Duration::from_micros(200);

/// `struct sched_attr` of `sched_setattr(2)` (the first published layout; the kernel takes
/// the size it is given).
#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

/// `SCHED_FLAG_RESET_ON_FORK` of `sched_setattr(2)`.
#[cfg(target_os = "linux")]
const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

#[cfg(target_os = "linux")]
fn get_attr() -> std::io::Result<SchedAttr> {
    let mut attr = SchedAttr::default();
    // SAFETY: the kernel writes at most `size` bytes into `attr`, which outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &raw mut attr, size_of::<SchedAttr>() as u32, 0) };
    if rc == 0 { Ok(attr) } else { Err(std::io::Error::last_os_error()) }
}

/// Asks the kernel to give the calling thread [`SHORT_SLICE`]s, keeping its policy and nice
/// value. True when the kernel took the request (read back), false where it cannot: another
/// system, a kernel before 6.12, or a thread that is not under the fair scheduler. The thread
/// then runs on default slices, which is correct, only later to start.
pub fn prefer_short_slices() -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(mut attr) = get_attr() else { return false };
        // SCHED_OTHER and SCHED_BATCH are the fair scheduler's; leave real-time threads be.
        if attr.policy != libc::SCHED_OTHER as u32 && attr.policy != libc::SCHED_BATCH as u32 {
            return false;
        }
        attr.size = size_of::<SchedAttr>() as u32;
        // Keep reset-on-fork if someone set it; the other flags belong to other policies.
        attr.flags &= SCHED_FLAG_RESET_ON_FORK;
        attr.runtime = SHORT_SLICE.as_nanos() as u64;
        // SAFETY: `attr` is a complete, initialised sched_attr of the size it states.
        let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0) };
        rc == 0 && get_attr().is_ok_and(|now| now.runtime == attr.runtime)
    }
    #[cfg(not(target_os = "linux"))]
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn asks_for_a_short_slice_and_keeps_policy_and_nice() {
        std::thread::spawn(|| {
            // SAFETY: raising this thread's own nice value, which needs no privilege.
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 3) }, 0);
            let before = get_attr().unwrap();
            let took = prefer_short_slices();
            let after = get_attr().unwrap();
            assert_eq!((after.policy, after.nice), (before.policy, 3), "policy and nice are kept");
            // A kernel with EEVDF's custom slices reports the slice back; an older one reports
            // none and the request says so.
            assert_eq!(took, after.runtime == SHORT_SLICE.as_nanos() as u64);
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
            let version: Vec<u32> = release.split(['.', '-']).take(2).map(|p| p.parse().unwrap_or(0)).collect();
            if version >= vec![6, 12] {
                assert!(took, "kernel {release} has custom slices");
            }
        })
        .join()
        .unwrap();
    }
}
