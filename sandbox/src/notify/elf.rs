//! The ELF interpreter (`PT_INTERP`) of a program: the second file the
//! kernel opens for `execve`, so the transparent child's Landlock domain
//! must let it be read and executed. Parsing is the `object` crate's.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::{elf, Endianness};

/// Why the interpreter could not be read from the program.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Not a 64-bit little-endian ELF file (or malformed).
    #[error("not a 64-bit ELF program: {0}")]
    Parse(#[from] object::read::Error),
    /// `PT_INTERP` does not hold a NUL-terminated absolute path.
    #[error("malformed PT_INTERP")]
    BadInterp,
}

/// Reads `PT_INTERP` from the program's first bytes (pure; the file
/// header and program headers must be within `bytes`, sections need not).
/// `Ok(None)`: a static program, no interpreter.
pub fn interpreter(bytes: &[u8]) -> Result<Option<PathBuf>, ElfError> {
    let header = elf::FileHeader64::<Endianness>::parse(bytes)?;
    let endian = header.endian()?;
    for ph in header.program_headers(endian, bytes)? {
        if ph.p_type(endian) != elf::PT_INTERP {
            continue;
        }
        let data = ph.data(endian, bytes).map_err(|()| ElfError::BadInterp)?;
        let path = data
            .split(|&b| b == 0)
            .next()
            .filter(|p| p.starts_with(b"/"))
            .ok_or(ElfError::BadInterp)?;
        use std::os::unix::ffi::OsStrExt as _;
        return Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(path))));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_programs_interpreter() {
        #[allow(clippy::disallowed_methods)]
        let bytes = std::fs::read("/bin/sh").expect("read /bin/sh");
        let interp = interpreter(&bytes[..bytes.len().min(64 << 10)])
            .expect("parses")
            .expect("dynamic");
        assert!(interp.is_absolute());
        assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(interpreter(b"").is_err());
        assert!(interpreter(b"\x7fELF\x02\x01\x01").is_err());
        assert!(interpreter(&[0u8; 4096]).is_err());
    }
}
