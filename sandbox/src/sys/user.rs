//! User lookup through NSS (`getpwnam_r`), done in the broker before fork.
#![allow(unsafe_code)]

use std::ffi::CString;

/// `(uid, gid)` of `name`, or `None` when there is no such user.
pub fn lookup(name: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live local or buffer of the stated
    // length; getpwnam_r writes only into them.
    let r = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if r != 0 || result.is_null() {
        return None;
    }
    Some((pw.pw_uid, pw.pw_gid))
}
