//! `report()`: what this kernel offers for each layer and whether `require`
//! would enforce it (`openhook-broker check --sandbox`).

use std::fmt::Write as _;

use crate::{landlock, seccomp, sys};

/// Why `require` would refuse to start on this kernel: one entry per
/// layer that cannot be enforced (empty when every layer can). The same
/// checks `enter` and `PreExec::prepare` make before applying anything.
pub fn require_gaps() -> Vec<String> {
    let mut gaps: Vec<String> = landlock::Support::probe()
        .missing()
        .into_iter()
        .map(|w| format!("landlock: {w}"))
        .collect();
    if let Err(why) = seccomp::install::support() {
        gaps.push(format!("seccomp: {why}"));
    }
    gaps
}

/// A human-readable table, one line per layer.
pub fn report() -> String {
    let mut out = String::new();
    let uname = rustix::system::uname();
    let _ = writeln!(
        out,
        "openhook sandbox report — kernel {} {}",
        uname.release().to_string_lossy(),
        uname.machine().to_string_lossy()
    );
    let mut line = |layer: &str, found: String, verdict: &str| {
        let _ = writeln!(out, "  {layer:<14} {found:<62} {verdict}");
    };
    line(
        "no_new_privs",
        "prctl(PR_SET_NO_NEW_PRIVS)".into(),
        "enforced",
    );

    let bounding = sys::probe::bounding_set();
    let [eff, ..] = sys::probe::capability_sets().unwrap_or([0; 3]);
    let setpcap = eff & (1 << crate::caps::CAP_SETPCAP) != 0;
    line(
        "capabilities",
        format!(
            "bounding {bounding:#x}, CAP_SETPCAP {}",
            if setpcap { "held" } else { "not held" }
        ),
        if setpcap || bounding == 0 {
            "enforced (all sets, bounding and ambient)"
        } else {
            "enforced except bounding set (no CAP_SETPCAP; unreachable under no_new_privs)"
        },
    );

    let ll = landlock::Support::probe();
    let missing = ll.missing();
    let found = match ll.kernel_abi {
        None => "not available".to_string(),
        Some(n) => format!(
            "ABI {n} (crate uses {}): {} fs rights, tcp {}, scopes {}",
            ll.abi(),
            ll.fs_rights().len(),
            if n >= 4 { "yes" } else { "no" },
            if n >= 6 { "yes" } else { "no" }
        ),
    };
    let verdict = if missing.is_empty() {
        "enforced".to_string()
    } else {
        format!(
            "require: REFUSES ({}); best-effort: partial",
            missing.join("; ")
        )
    };
    line("landlock", found, &verdict);

    match seccomp::install::support() {
        Ok(()) => line(
            "seccomp",
            "filter mode, KILL_PROCESS and ERRNO actions".into(),
            "enforced",
        ),
        Err(why) => line("seccomp", why, "require: REFUSES; best-effort: missing"),
    }
    let debug = seccomp::install::default_action_from_env();
    if debug != seccomp::DefaultAction::KillProcess {
        let _ = writeln!(
            out,
            "  NOTE: OPENHOOK_SECCOMP is set: seccomp default action is {debug:?} (debug)"
        );
    }
    out
}
