//! Test helper: optionally enters the sandbox through the same
//! `openhook_sandbox::enter` the emulator uses, then attempts one action and
//! prints `ok` or `errno=N` (a seccomp kill prints nothing: the process dies
//! of SIGSYS).
//!
//! Usage: `openhook-sandbox-probe LAYERS ACTION [ARG]`
//! LAYERS: none | all | nnp | caps | landlock | seccomp (comma-separated).
//! Actions are listed in `sys.rs`.

mod sys;

use openhook_sandbox::{enter, Layers, Mode, Profile, ThreadFilter, ThreadKind};

fn layers(spec: &str) -> Option<Layers> {
    if spec == "none" {
        return None;
    }
    if spec == "all" {
        return Some(Layers::ALL);
    }
    let mut l = Layers::NONE;
    for part in spec.split(',') {
        match part {
            "nnp" => l.no_new_privs = true,
            "caps" => l.capabilities = true,
            "landlock" => l.landlock = true,
            "seccomp" => l.seccomp = true,
            other => {
                eprintln!("unknown layer {other}");
                std::process::exit(2);
            }
        }
    }
    Some(l)
}

/// `openhook-sandbox-probe preexec LAYERS ACTION [ARG]`: holds an
/// inheritable fd, declares fd 10, then runs the probe again as
/// `LAYERS ACTION ARG` through `PreExec` (policy from `PROBE_NS`,
/// `PROBE_USER`, `PROBE_MODE`). Prints `child=PID leaked=FD`, forwards the
/// child's output, then `exit=CODE` or `signal=N`.
fn preexec(rest: &[String]) -> ! {
    use openhook_sandbox::{PreExec, SandboxPolicy};
    use std::os::unix::process::ExitStatusExt;
    let leaked = sys::leak_fd();
    if leaked < 0 || sys::declare_fd(leaked, 10) != 10 {
        eprintln!("could not set up fds");
        std::process::exit(3);
    }
    let mut policy = SandboxPolicy::default();
    if let Ok(ns) = std::env::var("PROBE_NS") {
        policy.namespaces = ns
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("ns"))
            .collect();
    }
    policy.user = std::env::var("PROBE_USER").ok();
    if let Ok(m) = std::env::var("PROBE_MODE") {
        policy.mode = m.parse().expect("mode");
    }
    let exe = std::env::current_exe().expect("current_exe");
    let pre = match PreExec::prepare(&policy, &exe, &[10]) {
        Ok(p) => std::sync::Arc::new(p),
        Err(e) => {
            println!("prepare-error={e}");
            std::process::exit(0);
        }
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(rest);
    let spawned = if std::env::var_os("PROBE_NO_PREEXEC").is_some() {
        cmd.spawn()
    } else {
        cmd.env_clear().envs(pre.env().iter().map(|(k, v)| (k, v)));
        sys::spawn_hardened(&mut cmd, pre)
    };
    match spawned {
        Ok(mut child) => {
            println!("child={} leaked={leaked}", child.id());
            let status = child.wait().expect("wait");
            match (status.code(), status.signal()) {
                (Some(c), _) => println!("exit={c}"),
                (_, Some(s)) => println!("signal={s}"),
                _ => println!("exit=?"),
            }
        }
        Err(e) => println!("spawn-error={e}"),
    }
    std::process::exit(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: openhook-sandbox-probe LAYERS ACTION [ARG]");
        std::process::exit(2);
    }
    let arg = args.get(3).cloned().unwrap_or_default();
    sys::no_core_dumps();
    if args[1] == "preexec" {
        preexec(&args[2..]);
    }
    if args[1] == "report" {
        print!("{}", openhook_sandbox::report());
        return;
    }
    // Whatever the action needs from outside is prepared before confinement,
    // as the emulator prepares its fds before `enter`.
    let prepared = match sys::prepare(&args[2], &arg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("prepare {}: {e}", args[2]);
            std::process::exit(3);
        }
    };
    let mut vcpu_filter = ThreadFilter::disabled(ThreadKind::Vcpu);
    if let Some(layers) = layers(&args[1]) {
        let profile = Profile {
            layers,
            ..Profile::new(Mode::Require)
        };
        match enter(&profile) {
            Ok(report) => {
                eprintln!("entered: {:?}", report.layers);
                vcpu_filter = report.thread_filter(ThreadKind::Vcpu);
            }
            Err(e) => {
                eprintln!("enter: {e}");
                std::process::exit(4);
            }
        }
    }
    let result = match args[2].as_str() {
        // What a confined emulator must still be able to do.
        "thread" => std::thread::spawn(|| 42)
            .join()
            .map_or(Err(libc::EIO), |_| Ok(())),
        "unix-socket" => std::os::unix::net::UnixDatagram::pair()
            .map(drop)
            .map_err(|e| e.raw_os_error().unwrap_or(0)),
        "vcpu-thread-unix-socket" => std::thread::spawn(move || {
            vcpu_filter.load().map_err(|_| libc::EIO)?;
            std::os::unix::net::UnixDatagram::pair()
                .map(drop)
                .map_err(|e| e.raw_os_error().unwrap_or(0))
        })
        .join()
        .unwrap_or(Err(libc::EIO)),
        _ => sys::act(&args[2], &arg, &prepared),
    };
    match result {
        Ok(()) => println!("ok"),
        Err(errno) => println!("errno={errno}"),
    }
}
