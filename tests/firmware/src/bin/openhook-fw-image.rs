//! `openhook-fw-image NAME > FILE`: writes the guest test firmware image
//! NAME (`openhook-fw.bin`, `openhook-fw-hostile.bin`, `openhook-fw-bench.bin`,
//! `openhook-fw-boot.bin`) to standard output, for scripts and the demo.

use std::io::Write;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(name), None) = (args.next(), args.next()) else {
        eprintln!("usage: openhook-fw-image NAME > FILE");
        std::process::exit(2);
    };
    let Some(bytes) = openhook_firmware::bytes(&name) else {
        let names: Vec<&str> = openhook_firmware::IMAGES.iter().map(|(n, _)| *n).collect();
        eprintln!(
            "openhook-fw-image: no image `{name}` (have: {})",
            names.join(", ")
        );
        std::process::exit(2);
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        eprintln!("openhook-fw-image: writing {name}: {e}");
        std::process::exit(1);
    }
}
