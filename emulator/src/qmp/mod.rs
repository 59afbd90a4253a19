//! (filled by the qmp work)
