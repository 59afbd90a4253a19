//! (filled by the cli work)
