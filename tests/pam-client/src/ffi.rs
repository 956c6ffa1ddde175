//! libpam's application interface (Linux-PAM's <security/_pam_types.h>,
//! <security/pam_appl.h>), only what the driver and the bench call.

use std::ffi::{c_char, c_int, c_uint, c_void};

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_SYSTEM_ERR: c_int = 4;
pub const PAM_BUF_ERR: c_int = 5;
pub const PAM_AUTH_ERR: c_int = 7;
pub const PAM_CONV_ERR: c_int = 19;

pub const PAM_TTY: c_int = 3;
pub const PAM_RHOST: c_int = 4;
pub const PAM_FAIL_DELAY: c_int = 10;

pub const PAM_SILENT: c_int = 0x8000;

pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
pub const PAM_ERROR_MSG: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;

pub const PAM_MAX_NUM_MSG: c_int = 32;

#[repr(C)]
#[derive(Debug)]
pub struct PamMessage {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

#[repr(C)]
#[derive(Debug)]
pub struct PamResponse {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

pub type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
#[derive(Debug)]
pub struct PamConv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

/// libpam's opaque `pam_handle_t`.
#[repr(C)]
#[derive(Debug)]
pub struct PamHandle {
    _private: [u8; 0],
}

/// The `PAM_FAIL_DELAY` item: called instead of sleeping.
pub type DelayFn = unsafe extern "C" fn(c_int, c_uint, *mut c_void);

#[link(name = "pam")]
extern "C" {
    pub fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    pub fn pam_start_confdir(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    pub fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    pub fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    pub fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    pub fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    pub fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
}

// From glibc: libpam frees the responses with free(), so they are allocated with these.
extern "C" {
    pub fn calloc(nmemb: usize, size: usize) -> *mut c_void;
    pub fn malloc(size: usize) -> *mut c_void;
    pub fn free(p: *mut c_void);
}

/// The name of a PAM result code, as in Linux-PAM's headers.
pub fn result_name(code: c_int) -> String {
    let name = match code {
        0 => "PAM_SUCCESS",
        1 => "PAM_OPEN_ERR",
        2 => "PAM_SYMBOL_ERR",
        3 => "PAM_SERVICE_ERR",
        4 => "PAM_SYSTEM_ERR",
        5 => "PAM_BUF_ERR",
        6 => "PAM_PERM_DENIED",
        7 => "PAM_AUTH_ERR",
        8 => "PAM_CRED_INSUFFICIENT",
        9 => "PAM_AUTHINFO_UNAVAIL",
        10 => "PAM_USER_UNKNOWN",
        11 => "PAM_MAXTRIES",
        12 => "PAM_NEW_AUTHTOK_REQD",
        13 => "PAM_ACCT_EXPIRED",
        14 => "PAM_SESSION_ERR",
        15 => "PAM_CRED_UNAVAIL",
        16 => "PAM_CRED_EXPIRED",
        17 => "PAM_CRED_ERR",
        18 => "PAM_NO_MODULE_DATA",
        19 => "PAM_CONV_ERR",
        20 => "PAM_AUTHTOK_ERR",
        21 => "PAM_AUTHTOK_RECOVERY_ERR",
        22 => "PAM_AUTHTOK_LOCK_BUSY",
        23 => "PAM_AUTHTOK_DISABLE_AGING",
        24 => "PAM_TRY_AGAIN",
        25 => "PAM_IGNORE",
        26 => "PAM_ABORT",
        27 => "PAM_AUTHTOK_EXPIRED",
        28 => "PAM_MODULE_UNKNOWN",
        29 => "PAM_BAD_ITEM",
        30 => "PAM_CONV_AGAIN",
        31 => "PAM_INCOMPLETE",
        other => return format!("PAM_UNKNOWN_{other}"),
    };
    name.to_owned()
}
