//! (filled by the fds work)
