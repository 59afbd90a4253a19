//! `openhook-emulator`: parse the QEMU-style command line, enter the
//! sandbox, run the machine, exit with its status (see `run`).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let status = openhook_emulator::run::main_with_args(args);
    std::process::exit(status);
}
