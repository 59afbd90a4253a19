//! (filled by the devices work)
