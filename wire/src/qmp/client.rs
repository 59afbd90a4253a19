//! A small blocking QMP client: connect, read the greeting, negotiate,
//! run commands (optionally handing over fds with the command's bytes, as
//! SCM_RIGHTS), and collect the events that arrive in between.
//!
//! Works against QEMU and against openhook-emulator alike.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::message::{
    encode_line, Command, ErrorBody, Event, Greeting, GreetingBody, ServerMessage, VersionInfo,
    VersionTriple,
};
use super::stream::{JsonError, JsonStream, Limits};
use crate::scm;

/// What can go wrong talking to a monitor.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("QMP socket I/O: {0}")]
    Io(#[from] io::Error),
    #[error("the monitor closed the connection")]
    Closed,
    #[error("the monitor sent bad JSON: {0}")]
    Json(#[from] JsonError),
    #[error("unexpected message from the monitor: {0}")]
    Protocol(String),
    /// The command ran and failed: QMP's `{"error": {...}}`.
    #[error("{}: {}", .0.class.as_str(), .0.desc)]
    Command(ErrorBody),
}

impl ClientError {
    /// The QMP error body, when the command itself failed.
    pub fn qmp(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Command(e) => Some(e),
            _ => None,
        }
    }
}

/// A connection to one QMP monitor.
#[derive(Debug)]
pub struct QmpClient {
    sock: UnixStream,
    stream: JsonStream,
    inbox: VecDeque<Value>,
    events: VecDeque<Event>,
    greeting: Greeting,
    next_id: u64,
}

impl QmpClient {
    /// Connects to a monitor socket, reads the greeting and negotiates
    /// capabilities.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let mut c = Self::handshake(UnixStream::connect(path)?)?;
        c.negotiate()?;
        Ok(c)
    }

    /// Reads the greeting from an already connected socket; does not
    /// negotiate (see [`QmpClient::negotiate`]).
    pub fn handshake(sock: UnixStream) -> Result<Self, ClientError> {
        let mut c = Self::from_negotiated(sock);
        match c.recv()? {
            ServerMessage::Greeting(g) => c.greeting = g,
            other => {
                return Err(ClientError::Protocol(format!(
                    "expected a greeting, got {other:?}"
                )))
            }
        }
        Ok(c)
    }

    /// Wraps a socket whose greeting the caller has already read (and,
    /// usually, negotiated); [`QmpClient::greeting`] is then empty.
    pub fn from_negotiated(sock: UnixStream) -> Self {
        QmpClient {
            sock,
            stream: JsonStream::new(Limits::CLIENT),
            inbox: VecDeque::new(),
            events: VecDeque::new(),
            greeting: Greeting {
                qmp: GreetingBody {
                    version: VersionInfo {
                        qemu: VersionTriple {
                            micro: 0,
                            minor: 0,
                            major: 0,
                        },
                        package: String::new(),
                    },
                    capabilities: Vec::new(),
                },
            },
            next_id: 1,
        }
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Greeting {
        &self.greeting
    }

    /// `qmp_capabilities` with no capability enabled.
    pub fn negotiate(&mut self) -> Result<(), ClientError> {
        self.execute("qmp_capabilities", None).map(drop)
    }

    /// Bounds every wait for the monitor (`None`: wait forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(t)?;
        self.sock.set_write_timeout(t)
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, args: Option<Value>) -> Result<Value, ClientError> {
        self.execute_with_fds(command, args, &[])
    }

    /// Runs a command, sending `fds` in SCM_RIGHTS with the command's
    /// first byte (what the monitor's `getfd` and `add-fd` consume).
    pub fn execute_with_fds(
        &mut self,
        command: &str,
        args: Option<Value>,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Value, ClientError> {
        let id = Value::from(format!("oh-{}", self.next_id));
        self.next_id += 1;
        let line = encode_line(&Command {
            execute: command,
            arguments: args.as_ref(),
            id: Some(&id),
        });
        self.send_raw(&line, fds)?;
        self.wait_response(&id)
    }

    /// Sends raw bytes, with `fds` attached to the first of them.
    pub fn send_raw(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), ClientError> {
        let mut sent = 0;
        if !fds.is_empty() {
            sent = scm::send_with_fds(&self.sock, bytes, fds).map_err(io::Error::from)?;
        }
        self.sock.write_all(&bytes[sent..])?;
        Ok(())
    }

    /// Waits for the response carrying `id` (or one with no id, which is
    /// how a server answers input it could not parse), queueing events.
    pub fn wait_response(&mut self, id: &Value) -> Result<Value, ClientError> {
        loop {
            match self.recv()? {
                ServerMessage::Return { ret, id: rid } if rid.as_ref().is_none_or(|r| r == id) => {
                    return Ok(ret)
                }
                ServerMessage::Error { error, id: rid } if rid.as_ref().is_none_or(|r| r == id) => {
                    return Err(ClientError::Command(error))
                }
                ServerMessage::Event(e) => self.events.push_back(e),
                _ => {}
            }
        }
    }

    /// Reads the next message from the monitor (events included).
    pub fn recv(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            if let Some(v) = self.inbox.pop_front() {
                return Ok(ServerMessage::classify(v));
            }
            let mut buf = [0u8; 8192];
            let n = match self.sock.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            for item in self.stream.push(&buf[..n]) {
                self.inbox.push_back(item?);
            }
        }
    }

    /// Events received so far, oldest first; drains the queue.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// Waits until an event named `name` arrives (or the read timeout
    /// set with [`QmpClient::set_timeout`] expires), returning it; other
    /// events stay queued.
    pub fn wait_event(&mut self, name: &str) -> Result<Event, ClientError> {
        if let Some(i) = self.events.iter().position(|e| e.event == name) {
            if let Some(e) = self.events.remove(i) {
                return Ok(e);
            }
        }
        loop {
            if let ServerMessage::Event(e) = self.recv()? {
                if e.event == name {
                    return Ok(e);
                }
                self.events.push_back(e);
            }
        }
    }

    /// The socket, e.g. to poll it.
    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }
}
