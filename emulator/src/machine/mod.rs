//! (filled by the machine work)
