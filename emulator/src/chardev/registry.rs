//! The chardev id table and the serial frontend's port. QEMU's texts.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use super::output::ChardevOutput;

/// The id QEMU gives the chardev of the first `-serial` that is not
/// `chardev:ID` (`-serial file:P`, `-serial stdio`).
pub const SERIAL0: &str = "serial0";

/// Errors of `chardev-add` / `chardev-remove` / `chardev-change`;
/// `Display` is QEMU 7.2's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChardevError {
    #[error("attempt to add duplicate property '{0}' to object (type 'container')")]
    Duplicate(String),
    #[error("Chardev '{0}' not found")]
    NotFound(String),
    #[error("Chardev '{0}' is busy")]
    Busy(String),
    #[error("Chardev '{0}' does not exist")]
    ChangeMissing(String),
    #[error("Chardev user does not support chardev hotswap")]
    NoHotswap,
}

/// Who uses a chardev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum User {
    None,
    /// The UART (supports `chardev-change`).
    Serial,
    /// A QMP monitor (no hotswap, as in QEMU).
    Monitor,
}

struct Entry {
    output: Arc<ChardevOutput>,
    user: User,
}

/// The serial frontend: writes go to the chardev attached now, or nowhere.
#[derive(Default)]
pub struct SerialPort {
    current: Mutex<Option<Arc<ChardevOutput>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SerialPort {
    fn attach(&self, out: Option<Arc<ChardevOutput>>) {
        *lock(&self.current) = out;
    }

    /// Whether the attached chardev takes a byte now (see
    /// [`ChardevOutput::ready`]); with none attached bytes are dropped, so
    /// yes.
    pub fn ready(&self) -> bool {
        lock(&self.current).as_ref().is_none_or(|o| o.ready())
    }

    /// Whether a chardev is attached.
    pub fn is_attached(&self) -> bool {
        lock(&self.current).is_some()
    }
}

/// The UART's writer: a handle on a [`SerialPort`].
pub struct SerialWriter(Arc<SerialPort>);

impl Write for SerialWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = lock(&self.0.current).clone();
        match out {
            Some(o) => o.write_bytes(buf).map(|()| buf.len()),
            // Nothing attached: the bytes are dropped, as by a UART with
            // no cable.
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl crate::devices::serial::SerialOutput for SerialWriter {
    fn ready(&self) -> bool {
        self.0.ready()
    }
}

#[derive(Default)]
struct Inner {
    devs: BTreeMap<String, Entry>,
    /// The serial port and the chardev id it follows.
    serial: Option<(String, Arc<SerialPort>)>,
}

/// Every chardev of the emulator, by id. Shared by the start-up code and
/// the monitors.
#[derive(Default)]
pub struct Chardevs {
    inner: Mutex<Inner>,
}

impl Chardevs {
    pub fn new() -> Arc<Chardevs> {
        Arc::new(Chardevs::default())
    }

    /// Registers a chardev that a monitor serves on (it can be neither
    /// removed nor changed, and its id is taken).
    pub fn add_monitor(&self, id: &str) -> Result<(), ChardevError> {
        self.insert(id, Arc::new(ChardevOutput::Monitor), User::Monitor)
    }

    /// `-chardev` / `chardev-add`: a new chardev under `id`. When the
    /// serial port follows `id` (`-serial chardev:ID` with no such
    /// chardev yet), it attaches now and the chardev becomes busy.
    pub fn add(&self, id: &str, output: ChardevOutput) -> Result<(), ChardevError> {
        let output = Arc::new(output);
        let mut inner = lock(&self.inner);
        if inner.devs.contains_key(id) {
            return Err(ChardevError::Duplicate(id.to_string()));
        }
        let mut user = User::None;
        if let Some((sid, port)) = &inner.serial {
            if sid == id {
                port.attach(Some(output.clone()));
                user = User::Serial;
            }
        }
        inner.devs.insert(id.to_string(), Entry { output, user });
        Ok(())
    }

    fn insert(&self, id: &str, output: Arc<ChardevOutput>, user: User) -> Result<(), ChardevError> {
        let mut inner = lock(&self.inner);
        if inner.devs.contains_key(id) {
            return Err(ChardevError::Duplicate(id.to_string()));
        }
        inner.devs.insert(id.to_string(), Entry { output, user });
        Ok(())
    }

    /// `chardev-remove`.
    pub fn remove(&self, id: &str) -> Result<(), ChardevError> {
        let mut inner = lock(&self.inner);
        let e = inner
            .devs
            .get(id)
            .ok_or_else(|| ChardevError::NotFound(id.to_string()))?;
        if e.user != User::None {
            return Err(ChardevError::Busy(id.to_string()));
        }
        let gone = inner.devs.remove(id);
        drop(inner);
        // Closing (and stopping a listener) happens outside the lock.
        if let Some(e) = gone {
            e.output.close();
        }
        Ok(())
    }

    /// `chardev-change`: gives chardev `id` a new backend; its user (the
    /// serial port) writes to the new one from now on.
    pub fn change(&self, id: &str, output: ChardevOutput) -> Result<(), ChardevError> {
        let output = Arc::new(output);
        let mut inner = lock(&self.inner);
        let user = inner
            .devs
            .get(id)
            .ok_or_else(|| ChardevError::ChangeMissing(id.to_string()))?
            .user;
        if user == User::Monitor {
            return Err(ChardevError::NoHotswap);
        }
        if user == User::Serial {
            if let Some((_, port)) = &inner.serial {
                port.attach(Some(output.clone()));
            }
        }
        let old = inner.devs.insert(id.to_string(), Entry { output, user });
        drop(inner);
        if let Some(e) = old {
            e.output.close();
        }
        Ok(())
    }

    /// The serial frontend on chardev `id`: attached at once when `id`
    /// exists, else when a chardev with that id is added. Only one serial
    /// port exists; a second call replaces the first.
    pub fn serial_port(&self, id: &str) -> SerialWriter {
        let port = Arc::new(SerialPort::default());
        let mut inner = lock(&self.inner);
        if let Some(e) = inner.devs.get_mut(id) {
            e.user = User::Serial;
            port.attach(Some(e.output.clone()));
        }
        inner.serial = Some((id.to_string(), port.clone()));
        SerialWriter(port)
    }

    /// Ids in use, sorted (for `query-chardev`).
    pub fn ids(&self) -> Vec<(String, &'static str)> {
        lock(&self.inner)
            .devs
            .iter()
            .map(|(id, e)| (id.clone(), e.output.kind()))
            .collect()
    }

    pub fn contains(&self, id: &str) -> bool {
        lock(&self.inner).devs.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    fn pipe_output() -> (OwnedFd, ChardevOutput) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        (r, ChardevOutput::Fd(w))
    }

    fn read_now(r: &OwnedFd) -> Vec<u8> {
        rustix::fs::fcntl_setfl(r, rustix::fs::OFlags::NONBLOCK).unwrap();
        let mut b = [0u8; 256];
        match rustix::io::read(r, &mut b) {
            Ok(n) => b[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    #[test]
    fn serial_follows_a_late_chardev_add_and_makes_it_busy() {
        let c = Chardevs::new();
        let mut w = c.serial_port("late");
        w.write_all(b"lost").unwrap();
        let (r, out) = pipe_output();
        c.add("late", out).unwrap();
        w.write_all(b"seen").unwrap();
        assert_eq!(read_now(&r), b"seen");
        assert_eq!(
            c.remove("late").unwrap_err().to_string(),
            "Chardev 'late' is busy"
        );
    }

    #[test]
    fn change_moves_the_serial_and_closes_the_old_backend() {
        let c = Chardevs::new();
        let (r1, o1) = pipe_output();
        c.add(SERIAL0, o1).unwrap();
        let mut w = c.serial_port(SERIAL0);
        w.write_all(b"one").unwrap();
        let (r2, o2) = pipe_output();
        c.change(SERIAL0, o2).unwrap();
        w.write_all(b"two").unwrap();
        assert_eq!(read_now(&r1), b"one");
        assert_eq!(read_now(&r2), b"two");
        // The old write end is closed: EOF.
        assert_eq!(read_now(&r1), b"");
        let mut b = [0u8; 1];
        assert_eq!(rustix::io::read(&r1, &mut b).unwrap(), 0);
    }

    #[test]
    fn qemu_texts() {
        let c = Chardevs::new();
        let (_r, o) = pipe_output();
        c.add("a", o).unwrap();
        let (_r2, o2) = pipe_output();
        assert_eq!(
            c.add("a", o2).unwrap_err().to_string(),
            "attempt to add duplicate property 'a' to object (type 'container')"
        );
        assert_eq!(
            c.remove("b").unwrap_err().to_string(),
            "Chardev 'b' not found"
        );
        let (_r3, o3) = pipe_output();
        assert_eq!(
            c.change("b", o3).unwrap_err().to_string(),
            "Chardev 'b' does not exist"
        );
        c.add_monitor("mon").unwrap();
        assert_eq!(
            c.remove("mon").unwrap_err().to_string(),
            "Chardev 'mon' is busy"
        );
        let (_r4, o4) = pipe_output();
        assert_eq!(
            c.change("mon", o4).unwrap_err().to_string(),
            "Chardev user does not support chardev hotswap"
        );
        c.remove("a").unwrap();
        assert!(!c.contains("a"));
        assert_eq!(c.ids(), vec![("mon".to_string(), "monitor")]);
    }
}
