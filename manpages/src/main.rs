//! `openhook-manpages DIR`: writes the generated man pages and shell
//! completions below DIR (`DIR/man/`, `DIR/completions/{bash,zsh,fish}/`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: openhook-manpages DIR");
        return ExitCode::from(2);
    };
    match openhook_manpages::install(std::path::Path::new(&dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openhook-manpages: {}: {e}", dir.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
