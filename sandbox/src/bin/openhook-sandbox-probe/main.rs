//! Test helper: optionally enters the sandbox through the same
//! `openhook_sandbox::enter` the emulator uses, then attempts one action and
//! prints `ok` or `errno=N` (a seccomp kill prints nothing: the process dies
//! of SIGSYS).
//!
//! Usage: `openhook-sandbox-probe LAYERS ACTION [ARG]`
//! LAYERS: none | all | nnp | caps | landlock | seccomp (comma-separated).
//! Actions are listed in `sys.rs`.

mod sys;

use openhook_sandbox::{enter, Layers, Mode, Profile};

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: openhook-sandbox-probe LAYERS ACTION [ARG]");
        std::process::exit(2);
    }
    let arg = args.get(3).cloned().unwrap_or_default();
    sys::no_core_dumps();
    // Whatever the action needs from outside is prepared before confinement,
    // as the emulator prepares its fds before `enter`.
    let prepared = match sys::prepare(&args[2], &arg) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("prepare {}: {e}", args[2]);
            std::process::exit(3);
        }
    };
    if let Some(layers) = layers(&args[1]) {
        let profile = Profile {
            layers,
            ..Profile::new(Mode::Require)
        };
        match enter(&profile) {
            Ok(report) => eprintln!("entered: {:?}", report.layers),
            Err(e) => {
                eprintln!("enter: {e}");
                std::process::exit(4);
            }
        }
    }
    match sys::act(&args[2], &arg, &prepared) {
        Ok(()) => println!("ok"),
        Err(errno) => println!("errno={errno}"),
    }
}
