//! `openhook-emulator`: parse the QEMU-style command line, enter the
//! sandbox, run the machine, exit with its status (see `run`).

fn main() {
    let exec_ns = openhook_emulator::boot_time::now_ns();
    // Diagnostics go to stderr, filtered by OPENHOOK_LOG (default `warn`),
    // as the broker's do (docs/user-guide.md).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OPENHOOK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    openhook_emulator::boot_time::mark_at("exec", exec_ns);
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let status = match openhook_emulator::run::main_with_args(args) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("openhook-emulator: {e}");
            e.exit_status()
        }
    };
    std::process::exit(status);
}
