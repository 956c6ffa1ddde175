//! The few libpam calls that pam-bindings 0.4 does not wrap, each in a safe function.
//!
//! Every `unsafe` block of twofa lives in this crate and says why it is sound. Strings that
//! libpam returns are copied out at once: their memory belongs to the PAM handle.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use pam::module::PamHandle;

use zeroize::Zeroizing;

/// PAM_SUCCESS from <security/_pam_types.h>.
const PAM_SUCCESS: c_int = 0;
/// PAM_AUTHTOK item type from <security/_pam_types.h>.
const PAM_AUTHTOK: c_int = 6;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_getenv(pamh: *mut c_void, name: *const c_char) -> *const c_char;
    fn pam_fail_delay(pamh: *mut c_void, usec: c_uint) -> c_int;
    fn pam_get_data(pamh: *const c_void, name: *const c_char, data: *mut *const c_void) -> c_int;
    fn pam_get_authtok(
        pamh: *mut c_void,
        item: c_int,
        authtok: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;
    fn pam_set_item(pamh: *mut c_void, item: c_int, value: *const c_void) -> c_int;
    fn pam_set_data(
        pamh: *mut c_void,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Option<unsafe extern "C" fn(*mut c_void, *mut c_void, c_int)>,
    ) -> c_int;
}

fn raw(pamh: &mut PamHandle) -> *mut c_void {
    (pamh as *mut PamHandle).cast()
}

/// A variable of the PAM environment (pam_getenv), never the process environment: a sudo
/// or su user controls the latter.
pub fn pam_env(pamh: &mut PamHandle, name: &CStr) -> Option<String> {
    // SAFETY: `pamh` is the live handle libpam passed to this hook; `name` is NUL-terminated.
    let value = unsafe { pam_getenv(raw(pamh), name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: a non-null result points to a NUL-terminated string owned by the handle, valid
    // until the PAM environment changes; we copy it before returning.
    let s = unsafe { CStr::from_ptr(value) };
    Some(s.to_string_lossy().into_owned())
}

/// Asks libpam to delay a failure by at least `usec` microseconds (pam_fail_delay).
pub fn request_fail_delay(pamh: &mut PamHandle, usec: u32) {
    // SAFETY: `pamh` is the live handle libpam passed to this hook.
    let _ = unsafe { pam_fail_delay(raw(pamh), usec) };
}

/// The mark's value: any non-null pointer. A static, so no cleanup function is needed and
/// nothing is freed when the handle ends.
static MARK: u8 = 1;

/// Sets the transaction-wide mark `name` (pam_set_data).
pub fn set_mark(pamh: &mut PamHandle, name: &CStr) -> bool {
    let data = (&raw const MARK).cast_mut().cast::<c_void>();
    // SAFETY: live handle; `name` NUL-terminated (libpam copies it); `data` points to a static
    // that outlives the handle and is never written through; no cleanup function.
    unsafe { pam_set_data(raw(pamh), name.as_ptr(), data, None) == PAM_SUCCESS }
}

/// Removes the data entry `name` (libpam runs the old entry's cleanup, if it had one).
pub fn clear_data(pamh: &mut PamHandle, name: &CStr) {
    // SAFETY: live handle; `name` NUL-terminated. Replacing an entry with NULL data and no
    // cleanup is how a module removes data: libpam has no delete, and it calls the replaced
    // entry's own cleanup (pam-bindings' Box drop, or none for the mark).
    let _ = unsafe { pam_set_data(raw(pamh), name.as_ptr(), std::ptr::null_mut(), None) };
}

/// The password field: PAM_AUTHTOK if an earlier module collected it, else asked with
/// `prompt` (echo off) through the application's conversation (pam_get_authtok). The copy
/// is wiped when dropped.
pub fn authtok(pamh: &mut PamHandle, prompt: &CStr) -> Option<Zeroizing<Vec<u8>>> {
    let mut value: *const c_char = std::ptr::null();
    // SAFETY: live handle; `value` is a valid out-pointer; `prompt` is NUL-terminated.
    let rc = unsafe { pam_get_authtok(raw(pamh), PAM_AUTHTOK, &mut value, prompt.as_ptr()) };
    if rc != PAM_SUCCESS || value.is_null() {
        return None;
    }
    // SAFETY: on success libpam returns the PAM_AUTHTOK item, a NUL-terminated string owned
    // by the handle; we copy it at once, before anything can change the item.
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
    Some(Zeroizing::new(bytes.to_vec()))
}

/// Replaces PAM_AUTHTOK with `password`, for the next module's `use_first_pass`. libpam
/// copies the value and wipes the old one; our temporary copy is wiped when dropped.
pub fn set_authtok(pamh: &mut PamHandle, password: &[u8]) -> bool {
    if password.contains(&0) {
        return false;
    }
    let mut terminated = Zeroizing::new(Vec::with_capacity(password.len() + 1));
    terminated.extend_from_slice(password);
    terminated.push(0);
    // SAFETY: live handle; `terminated` is NUL-terminated with no interior NUL and lives
    // across the call; libpam strdup()s it.
    unsafe { pam_set_item(raw(pamh), PAM_AUTHTOK, terminated.as_ptr().cast()) == PAM_SUCCESS }
}

/// Whether the mark `name` is set; removes it in the same step, so that no return path can
/// leave it behind for the next pam_authenticate on the same handle (sudo's retries).
pub fn take_mark(pamh: &mut PamHandle, name: &CStr) -> bool {
    let mut data: *const c_void = std::ptr::null();
    // SAFETY: live handle; `name` NUL-terminated; `data` is a valid out-pointer.
    let found = unsafe { pam_get_data(raw(pamh), name.as_ptr(), &mut data) } == PAM_SUCCESS;
    let marked = found && !data.is_null();
    if marked {
        clear_data(pamh, name);
    }
    marked
}
