//! `twofa-pam-client`: the application side of one PAM transaction through the system's real
//! libpam, shared by the test driver (`tests/driver`, which records what a user would see) and
//! the benchmark (`bench/`, which times logins). One conversation function for both, so they
//! cannot drift: on every error path the response array and the answers already copied into
//! it are wiped and freed, never left to leak.
//!
//! A [`Transaction`] owns the handle from `pam_start` to `pam_end`; the application says what
//! the user answers through a [`Conversation`].

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

pub mod ffi;

use ffi::{
    PamConv, PamHandle, PamMessage, PamResponse, PAM_BUF_ERR, PAM_CONV_ERR, PAM_FAIL_DELAY,
    PAM_MAX_NUM_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SUCCESS, PAM_SYSTEM_ERR,
};

/// Bytes overwritten with zeros before their memory is released: an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites `bytes` with zeros, in a way the compiler keeps even when the memory is about
/// to be freed.
pub fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference to one byte; a volatile write keeps the
        // compiler from removing the wipe of memory that is about to be freed.
        unsafe { ptr::write_volatile(b, 0) };
    }
}

/// What the application does with the modules' messages.
pub trait Conversation {
    /// A prompt (`PAM_PROMPT_ECHO_OFF` or `_ON`) and its text: the answer, or `None` when
    /// there is none, which fails the whole batch of messages with `PAM_CONV_ERR`.
    fn prompt(&mut self, style: c_int, text: &[u8]) -> Option<Secret>;
    /// Any other message (`PAM_ERROR_MSG`, `PAM_TEXT_INFO`, ...).
    fn show(&mut self, _style: c_int, _text: &[u8]) {}
    /// The `PAM_FAIL_DELAY` callback's value, when [`Transaction::catch_fail_delay`] was
    /// called: what the application would have slept, in microseconds.
    fn fail_delay(&mut self, _usec: c_uint) {}
}

/// The conversation and what happened to it, at a fixed address while libpam holds it.
struct Shared<C> {
    conv: RefCell<C>,
    /// Set when the conversation function caught a panic (reported, never expected).
    panicked: Cell<bool>,
}

/// One PAM transaction: `pam_start` to `pam_end` (on [`Transaction::end`], or on drop with
/// `PAM_SYSTEM_ERR`).
#[derive(Debug)]
pub struct Transaction<C: Conversation> {
    pamh: *mut PamHandle,
    // Boxed, so their addresses stay put while libpam holds them; dropped after pam_end.
    shared: Box<Shared<C>>,
    _conv: Box<PamConv>,
}

impl<C> std::fmt::Debug for Shared<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("panicked", &self.panicked.get())
            .finish_non_exhaustive()
    }
}

impl<C: Conversation> Transaction<C> {
    /// `pam_start` (or `pam_start_confdir` with `confdir`: the service file is read from
    /// there instead of /etc/pam.d). A NULL `user` lets the modules ask for it. The error is
    /// pam_start's result (`PAM_BUF_ERR` if it succeeded without a handle).
    pub fn start(
        service: &CStr,
        user: Option<&CStr>,
        confdir: Option<&CStr>,
        conv: C,
    ) -> Result<Self, c_int> {
        let shared = Box::new(Shared {
            conv: RefCell::new(conv),
            panicked: Cell::new(false),
        });
        let pam_conv = Box::new(PamConv {
            conv: Some(conversation::<C>),
            appdata_ptr: &*shared as *const Shared<C> as *mut c_void,
        });
        let mut pamh: *mut PamHandle = ptr::null_mut();
        let user = user.map_or(ptr::null(), CStr::as_ptr);
        let rc = match confdir {
            // SAFETY: NUL-terminated strings (or a NULL user); `pam_conv` and `shared` outlive
            // the handle (they are dropped after pam_end); `pamh` is an out-pointer.
            Some(dir) => unsafe {
                ffi::pam_start_confdir(service.as_ptr(), user, &*pam_conv, dir.as_ptr(), &mut pamh)
            },
            // SAFETY: as above.
            None => unsafe { ffi::pam_start(service.as_ptr(), user, &*pam_conv, &mut pamh) },
        };
        if rc != PAM_SUCCESS || pamh.is_null() {
            return Err(if rc == PAM_SUCCESS { PAM_BUF_ERR } else { rc });
        }
        Ok(Transaction {
            pamh,
            shared,
            _conv: pam_conv,
        })
    }

    /// Sets a string item (`PAM_RHOST`, `PAM_TTY`, ...); libpam copies it.
    pub fn set_item(&mut self, item: c_int, value: &CStr) -> c_int {
        // SAFETY: a live handle; string items take a NUL-terminated string, copied by libpam.
        unsafe { ffi::pam_set_item(self.pamh, item, value.as_ptr() as *const c_void) }
    }

    /// Sets `PAM_FAIL_DELAY` to a callback, so libpam passes the delay to
    /// [`Conversation::fail_delay`] instead of sleeping.
    pub fn catch_fail_delay(&mut self) -> c_int {
        let delay: ffi::DelayFn = fail_delay::<C>;
        // SAFETY: a live handle; PAM_FAIL_DELAY takes a function pointer of this type, called
        // with the conversation's appdata (`shared`), which outlives the handle.
        unsafe { ffi::pam_set_item(self.pamh, PAM_FAIL_DELAY, delay as *const c_void) }
    }

    /// Sets `NAME=VALUE` in the PAM environment (not the process's); libpam copies it.
    pub fn putenv(&mut self, name_value: &CStr) -> c_int {
        // SAFETY: a live handle, a NUL-terminated string.
        unsafe { ffi::pam_putenv(self.pamh, name_value.as_ptr()) }
    }

    /// `pam_authenticate`.
    pub fn authenticate(&mut self, flags: c_int) -> c_int {
        // SAFETY: a live handle; the conversation's appdata (`shared`) outlives the call.
        unsafe { ffi::pam_authenticate(self.pamh, flags) }
    }

    /// `pam_acct_mgmt`.
    pub fn acct_mgmt(&mut self, flags: c_int) -> c_int {
        // SAFETY: as in `authenticate`.
        unsafe { ffi::pam_acct_mgmt(self.pamh, flags) }
    }

    /// Runs `f` on the conversation; `None` if it is in use (only from inside a callback).
    pub fn with_conversation<R>(&self, f: impl FnOnce(&mut C) -> R) -> Option<R> {
        let mut conv = self.shared.conv.try_borrow_mut().ok()?;
        Some(f(&mut conv))
    }

    /// Whether the conversation function caught a panic.
    pub fn panicked(&self) -> bool {
        self.shared.panicked.get()
    }

    /// `pam_end` with the last result; the conversation is dropped after it.
    pub fn end(mut self, status: c_int) -> c_int {
        self.end_with(status)
    }

    fn end_with(&mut self, status: c_int) -> c_int {
        if self.pamh.is_null() {
            return PAM_SUCCESS;
        }
        // SAFETY: the handle came from a successful pam_start and is ended exactly once (it is
        // set to NULL below).
        let rc = unsafe { ffi::pam_end(self.pamh, status) };
        self.pamh = ptr::null_mut();
        rc
    }
}

impl<C: Conversation> Drop for Transaction<C> {
    fn drop(&mut self) {
        self.end_with(PAM_SYSTEM_ERR);
    }
}

/// Writes `text` into a fresh `malloc`ed, NUL-terminated buffer that libpam will `free`.
fn c_copy(text: &[u8]) -> *mut u8 {
    // SAFETY: plain allocation; the result is checked for NULL.
    let p = unsafe { ffi::malloc(text.len() + 1) } as *mut u8;
    if p.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `p` has room for len + 1 bytes and does not overlap `text`.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
        *p.add(text.len()) = 0;
    }
    p
}

/// Frees a response array built by [`converse`], wiping each answer first.
///
/// # Safety
/// `resp` must be a `calloc`ed array of `n` responses whose `resp` fields are NULL or
/// NUL-terminated `malloc`ed strings.
unsafe fn free_responses(resp: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: `i < n`, inside the array (caller's contract).
        let r = unsafe { &mut *resp.add(i) };
        if !r.resp.is_null() {
            // SAFETY: a NUL-terminated string we allocated (caller's contract).
            let len = unsafe { CStr::from_ptr(r.resp) }.to_bytes().len();
            // SAFETY: `len` bytes are ours to write before the terminator.
            wipe(unsafe { std::slice::from_raw_parts_mut(r.resp as *mut u8, len) });
            // SAFETY: allocated by malloc in `c_copy`, freed once.
            unsafe { ffi::free(r.resp as *mut c_void) };
            r.resp = ptr::null_mut();
        }
    }
    // SAFETY: allocated by calloc in `converse`, freed once.
    unsafe { ffi::free(resp as *mut c_void) };
}

/// The body of the conversation function (without the unwind guard): every message goes to
/// the [`Conversation`], every prompt gets its answer. Any failure frees what was built.
///
/// # Safety
/// The arguments are those libpam passes to a conversation function; `appdata` points to the
/// transaction's `Shared<C>`, alive for the whole transaction.
unsafe fn converse<C: Conversation>(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    if appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is the transaction's boxed `Shared<C>`, alive during pam_* calls.
    let shared = unsafe { &*(appdata as *const Shared<C>) };
    let Ok(mut conv) = shared.conv.try_borrow_mut() else {
        return PAM_CONV_ERR;
    };
    let n = num_msg as usize;
    // SAFETY: plain allocation of n zeroed responses; checked for NULL.
    let replies = unsafe { ffi::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: Linux-PAM passes an array of `num_msg` pointers to messages.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: `replies` is our calloc'ed array of n responses.
            unsafe { free_responses(replies, n) };
            return PAM_CONV_ERR;
        }
        // SAFETY: a non-NULL message from libpam.
        let m = unsafe { &*m };
        let text = if m.msg.is_null() {
            &[][..]
        } else {
            // SAFETY: message texts are NUL-terminated strings, alive during this call.
            unsafe { CStr::from_ptr(m.msg) }.to_bytes()
        };
        if m.msg_style != PAM_PROMPT_ECHO_OFF && m.msg_style != PAM_PROMPT_ECHO_ON {
            conv.show(m.msg_style, text);
            continue;
        }
        let Some(answer) = conv.prompt(m.msg_style, text) else {
            // SAFETY: as above.
            unsafe { free_responses(replies, n) };
            return PAM_CONV_ERR;
        };
        let copy = c_copy(&answer.0);
        drop(answer);
        if copy.is_null() {
            // SAFETY: as above.
            unsafe { free_responses(replies, n) };
            return PAM_BUF_ERR;
        }
        // SAFETY: `i < n`, inside the calloc'ed array.
        unsafe { (*replies.add(i)).resp = copy as *mut _ };
    }
    // SAFETY: `resp` is libpam's out-pointer; libpam frees the array and the strings.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// The conversation function handed to libpam: no panic crosses it.
unsafe extern "C" fn conversation<C: Conversation>(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    // SAFETY: libpam's arguments, forwarded unchanged (see `converse`).
    let outcome = catch_unwind(AssertUnwindSafe(|| unsafe {
        converse::<C>(num_msg, msg, resp, appdata)
    }));
    outcome.unwrap_or_else(|_| {
        if !appdata.is_null() {
            // SAFETY: see `converse`.
            let shared = unsafe { &*(appdata as *const Shared<C>) };
            shared.panicked.set(true);
        }
        PAM_CONV_ERR
    })
}

/// The `PAM_FAIL_DELAY` callback: hands the delay to the conversation instead of sleeping.
unsafe extern "C" fn fail_delay<C: Conversation>(
    _retval: c_int,
    usec: c_uint,
    appdata: *mut c_void,
) {
    if appdata.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: libpam passes the conversation's appdata_ptr: the transaction's `Shared<C>`.
        let shared = unsafe { &*(appdata as *const Shared<C>) };
        if let Ok(mut conv) = shared.conv.try_borrow_mut() {
            conv.fail_delay(usec);
        }
    }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ffi::{PAM_ERROR_MSG, PAM_TEXT_INFO};

    /// Answers from a list; records what it was shown.
    #[derive(Default)]
    struct Scripted {
        answers: Vec<&'static str>,
        seen: Vec<(c_int, String)>,
    }

    impl Conversation for Scripted {
        fn prompt(&mut self, style: c_int, text: &[u8]) -> Option<Secret> {
            self.seen
                .push((style, String::from_utf8_lossy(text).into_owned()));
            (!self.answers.is_empty()).then(|| Secret(self.answers.remove(0).into()))
        }
        fn show(&mut self, style: c_int, text: &[u8]) {
            self.seen
                .push((style, String::from_utf8_lossy(text).into_owned()));
        }
    }

    /// Calls the conversation function as libpam does with these messages: its result and
    /// the answers (NULL for a message that got none), the response array freed.
    fn converse_with(
        shared: &Shared<Scripted>,
        msgs: &[(c_int, &CStr)],
    ) -> (c_int, Vec<Option<String>>) {
        let messages: Vec<PamMessage> = msgs
            .iter()
            .map(|(style, text)| PamMessage {
                msg_style: *style,
                msg: text.as_ptr(),
            })
            .collect();
        let mut pointers: Vec<*const PamMessage> = messages.iter().map(|m| m as *const _).collect();
        let mut resp: *mut PamResponse = ptr::null_mut();
        let appdata = shared as *const Shared<Scripted> as *mut c_void;
        // SAFETY: an array of valid messages, an out-pointer, the conversation's appdata.
        let rc = unsafe {
            conversation::<Scripted>(
                pointers.len() as c_int,
                pointers.as_mut_ptr(),
                &mut resp,
                appdata,
            )
        };
        if resp.is_null() {
            return (rc, vec![]);
        }
        let answers = (0..msgs.len())
            .map(|i| {
                // SAFETY: the conversation filled an array of one response per message.
                let r = unsafe { &*resp.add(i) };
                (!r.resp.is_null()).then(|| {
                    // SAFETY: a NUL-terminated string the conversation allocated.
                    unsafe { CStr::from_ptr(r.resp) }
                        .to_string_lossy()
                        .into_owned()
                })
            })
            .collect();
        // SAFETY: the array and strings the conversation allocated, freed once.
        unsafe { free_responses(resp, msgs.len()) };
        (rc, answers)
    }

    fn shared(answers: Vec<&'static str>) -> Shared<Scripted> {
        Shared {
            conv: RefCell::new(Scripted {
                answers,
                seen: vec![],
            }),
            panicked: Cell::new(false),
        }
    }

    #[test]
    fn every_prompt_gets_the_next_answer_and_messages_none() {
        let s = shared(vec!["hunter2", "123456"]);
        let (rc, answers) = converse_with(
            &s,
            &[
                (PAM_PROMPT_ECHO_OFF, c"Password: "),
                (PAM_TEXT_INFO, c"hello"),
                (PAM_PROMPT_ECHO_ON, c"Code: "),
            ],
        );
        assert_eq!(rc, PAM_SUCCESS);
        assert_eq!(
            answers,
            vec![Some("hunter2".into()), None, Some("123456".into())]
        );
        assert_eq!(s.conv.borrow().seen[1], (PAM_TEXT_INFO, "hello".into()));
    }

    #[test]
    fn a_batch_with_a_prompt_left_unanswered_fails_and_returns_nothing() {
        let s = shared(vec!["hunter2"]);
        let (rc, answers) = converse_with(
            &s,
            &[
                (PAM_PROMPT_ECHO_OFF, c"Password: "),
                (PAM_ERROR_MSG, c"oops"),
                (PAM_PROMPT_ECHO_OFF, c"Code: "),
            ],
        );
        assert_eq!((rc, answers), (PAM_CONV_ERR, vec![]));
        assert_eq!(s.conv.borrow().seen.len(), 3);
    }

    #[test]
    fn bad_arguments_are_a_conversation_error() {
        let s = shared(vec![]);
        let (rc, _) = converse_with(&s, &[]);
        assert_eq!(rc, PAM_CONV_ERR);
        let mut resp: *mut PamResponse = ptr::null_mut();
        // SAFETY: one NULL message pointer: refused before it is read.
        let rc =
            unsafe { conversation::<Scripted>(1, &mut ptr::null(), &mut resp, ptr::null_mut()) };
        assert_eq!((rc, resp.is_null()), (PAM_CONV_ERR, true));
    }
}
