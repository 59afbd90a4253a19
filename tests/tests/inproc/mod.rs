//! An in-process broker: the real `serve::serve` loop on one end of a
//! socketpair in a thread, the real `HookClient` on the other. Every open
//! goes through the wire protocol and SCM_RIGHTS, with real fds.
#![allow(dead_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use openhook_broker::ambient::Ambient;
use openhook_broker::audit::AuditLog;
use openhook_broker::policy::Policy;
use openhook_broker::serve::{serve, ServeError};
use openhook_wire::hook::HookClient;
use openhook_wire::Errno;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

pub struct InProc {
    pub client: Option<HookClient>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl InProc {
    pub fn start(
        policy: Arc<Policy>,
        ambient: Arc<Ambient>,
        audit: Option<Arc<AuditLog>>,
    ) -> InProc {
        Self::start_as(policy, ambient, audit, 4242)
    }

    /// [`InProc::start`] with `pid` as the requesting process (what
    /// `/proc/self` in a request means).
    pub fn start_as(
        policy: Arc<Policy>,
        ambient: Arc<Ambient>,
        audit: Option<Arc<AuditLog>>,
        pid: i32,
    ) -> InProc {
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let thread = std::thread::spawn(move || serve(a, &policy, &ambient, audit.as_deref(), pid));
        InProc {
            client: Some(HookClient::new(b)),
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> &HookClient {
        self.client.as_ref().expect("client")
    }

    /// Opens through the hook; a refusal is its errno.
    pub fn open(&self, path: &[u8], flags: u32, mode: u32) -> Result<OwnedFd, Errno> {
        self.client()
            .open_bytes(path, flags, mode)
            .map_err(|e: io::Error| Errno::from_io_error(&e).expect("an errno reply"))
    }

    /// Hangs up and checks the serve loop ended cleanly.
    pub fn finish(mut self) {
        self.client = None;
        let r = self
            .thread
            .take()
            .expect("thread")
            .join()
            .expect("serve thread");
        r.expect("serve ended cleanly at EOF");
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        self.client = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
