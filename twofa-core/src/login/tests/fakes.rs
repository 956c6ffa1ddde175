//! The one set of fakes the login tests share: a store in memory, a directory, a delivery
//! that records what it sent, and a user at the other end of the conversation.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use zeroize::Zeroizing;

use crate::config::Config;
use crate::delivery::{Deliverer, SendError};
use crate::enrollment::{DeliveryFactor, Enrollment, Factor, Method, RecoveryFactor, TotpFactor};
use crate::identity::{Account, Directory, LookupError};
use crate::login::{authenticate, CodeSource, Conversation, ConversationError, Decision, Request};
use crate::otp::{self, Params};
use crate::secret::Secret;
use crate::state::{OpOutcome, StateOp, UserState};
use crate::store::{Store, StoreError};

/// alice's TOTP secret in `world`: "12345678901234567890", the RFC 6238 one.
pub(super) const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// RFC 6238: the 6-digit SHA1 code of `SECRET` at this time is 050471.
pub(super) const NOW: u64 = 1_111_111_111;

/// A store in memory, to test the flow without files. State changes go through the same
/// `UserState::apply` as the file store's.
#[derive(Default)]
pub(super) struct MemStore {
    pub(super) enrolled: RefCell<HashMap<String, Enrollment>>,
    pub(super) state: RefCell<HashMap<String, UserState>>,
}

impl MemStore {
    /// `user`'s failure count, if the user has any state.
    pub(super) fn failures(&self, user: &str) -> Option<u32> {
        self.state.borrow().get(user).map(|st| st.failures)
    }

    /// Adds `factor` to `user`'s enrollment, creating it if there is none.
    pub(super) fn enroll(&self, user: &str, factor: Factor) {
        self.enrolled
            .borrow_mut()
            .entry(user.into())
            .or_insert_with(|| Enrollment {
                account: user.into(),
                factors: vec![],
            })
            .factors
            .push(factor);
    }

    /// Gives `user` `n` new recovery codes; returns them as shown.
    pub(super) fn with_recovery(&self, user: &str, n: usize) -> Result<Vec<String>, String> {
        let set = crate::recovery::issue(n).map_err(|e| e.to_string())?;
        let mut all = self.enrolled.borrow_mut();
        let e = all.get_mut(user).ok_or("not enrolled")?;
        e.set_recovery(RecoveryFactor {
            salt: set.salt,
            hashes: set.hashes,
            issued_at: 0,
        });
        Ok(set.codes.iter().map(|c| c.to_string()).collect())
    }
}

impl Store for MemStore {
    fn enrollment(&self, a: &Account) -> Result<Option<Enrollment>, StoreError> {
        Ok(self.enrolled.borrow().get(&a.name).cloned())
    }
    fn put_enrollment(&self, a: &Account, e: &Enrollment, replace: bool) -> Result<(), StoreError> {
        let mut all = self.enrolled.borrow_mut();
        if !replace && all.contains_key(&a.name) {
            return Err(StoreError::AlreadyEnrolled(a.name.clone()));
        }
        all.insert(a.name.clone(), e.clone());
        Ok(())
    }
    fn disable_enrollment(&self, _: &Account, _: u64) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self.enrolled.borrow().keys().cloned().collect();
        names.sort();
        Ok(names)
    }
    fn state(&self, a: &Account) -> Result<UserState, StoreError> {
        Ok(self
            .state
            .borrow()
            .get(&a.name)
            .cloned()
            .unwrap_or_default())
    }
    fn update(&self, a: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
        Ok(self
            .state
            .borrow_mut()
            .entry(a.name.clone())
            .or_default()
            .apply(op))
    }
}

/// A delivery that records what it sent (or fails, if told to).
#[derive(Default)]
pub(super) struct Sends {
    pub(super) sent: RefCell<Vec<(String, String)>>,
    pub(super) fail: bool,
}

impl Sends {
    /// A delivery whose program always fails.
    pub(super) fn failing() -> Sends {
        Sends {
            fail: true,
            ..Default::default()
        }
    }

    /// The last code sent, as the user reads it in their mail.
    pub(super) fn last_code(&self) -> Option<String> {
        self.sent.borrow().last().map(|(_, c)| c.clone())
    }
}

impl Deliverer for Sends {
    fn send(&self, _: &str, f: &DeliveryFactor, code: &str, _: u64) -> Result<(), SendError> {
        if self.fail {
            return Err(SendError::Program("smtp: connection refused".into()));
        }
        self.sent
            .borrow_mut()
            .push((f.to.join(","), code.to_string()));
        Ok(())
    }
}

/// alice (enrolled in `world`), bob (not), carol (in group "backup"), dave; nobody else.
pub(super) struct Dir;

impl Directory for Dir {
    fn lookup(&self, name: &str) -> Result<Option<Account>, LookupError> {
        Ok(["alice", "bob", "carol", "dave"]
            .contains(&name)
            .then(|| account(name)))
    }
    fn groups(&self, a: &Account) -> Result<Vec<String>, LookupError> {
        Ok(if a.name == "carol" {
            vec!["carol".into(), "backup".into()]
        } else {
            vec![a.name.clone()]
        })
    }
}

/// The account `Dir` gives `name`.
pub(super) fn account(name: &str) -> Account {
    Account {
        name: name.into(),
        uid: 1000,
        gid: 1000,
    }
}

/// What the user answers at one prompt.
pub(super) enum Reply {
    /// These words.
    Text(String),
    /// The code an authenticator app shows for the key the conversation showed (at `NOW`).
    CodeOfShownKey,
}

/// The user at the other end of the conversation: answers each prompt with the next reply
/// (then with the last code mailed, if reading mail; else a conversation error) and keeps a transcript: prompts as asked,
/// messages as `error: `, `notice: ` or `info: ` and the text.
pub(super) struct User<'m> {
    replies: VecDeque<Reply>,
    mailbox: Option<&'m Sends>,
    pub(super) prompts: Vec<String>,
}

impl User<'static> {
    /// A user who types these answers, one per prompt.
    pub(super) fn typing<S: Into<String>>(answers: impl IntoIterator<Item = S>) -> Self {
        Self::replying(answers.into_iter().map(|a| Reply::Text(a.into())))
    }

    /// A user whose application answers no prompt.
    pub(super) fn silent() -> Self {
        Self::replying([])
    }

    /// A user who answers with these replies, one per prompt.
    pub(super) fn replying(replies: impl IntoIterator<Item = Reply>) -> Self {
        User {
            replies: replies.into_iter().collect(),
            mailbox: None,
            prompts: vec![],
        }
    }
}

impl<'m> User<'m> {
    /// A user who types the last code `mail` sent, at every prompt.
    pub(super) fn reading(mail: &'m Sends) -> User<'m> {
        User {
            replies: VecDeque::new(),
            mailbox: Some(mail),
            prompts: vec![],
        }
    }

    /// The error messages shown.
    pub(super) fn errors(&self) -> Vec<&String> {
        self.prompts
            .iter()
            .filter(|p| p.starts_with("error: "))
            .collect()
    }

    fn code_of_shown_key(&self) -> Option<String> {
        let key = self
            .prompts
            .iter()
            .find_map(|m| m.split("enter this key: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())?;
        let secret = Secret::from_base32(key).ok()?;
        totp_at(secret.bytes(), NOW)
    }
}

impl Conversation for User<'_> {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        self.prompts.push(prompt.to_string());
        let answer = match (self.replies.pop_front(), self.mailbox) {
            (Some(Reply::Text(t)), _) => Some(t),
            (Some(Reply::CodeOfShownKey), _) => self.code_of_shown_key(),
            (None, Some(mail)) => mail.last_code(),
            (None, None) => None,
        };
        let answer = answer.ok_or(ConversationError)?;
        Ok(Some(Zeroizing::new(answer.into_bytes())))
    }
    fn show_error(&mut self, message: &str) {
        self.prompts.push(format!("error: {message}"));
    }
    fn show_info(&mut self, message: &str) {
        self.prompts.push(format!("info: {message}"));
    }
    fn show_notice(&mut self, message: &str) {
        self.prompts.push(format!("notice: {message}"));
    }
}

/// The 6-digit SHA1 TOTP code of `secret` at `now`.
pub(super) fn totp_at(secret: &[u8], now: u64) -> Option<String> {
    otp::totp_at_step(secret, otp::step_at(now, 30), &Params::DEFAULT).map(|c| c.to_string())
}

/// alice's code at `now` (`SECRET`).
pub(super) fn alice_code_at(now: u64) -> Result<String, String> {
    totp_at(b"12345678901234567890", now).ok_or_else(|| "no code".into())
}

/// A login to sshd from 192.0.2.7 at `NOW`, the password verified.
pub(super) fn req_for(user: &str, code: CodeSource) -> Request<'_> {
    Request {
        service: "sshd",
        user,
        rhost: Some("192.0.2.7"),
        password_failed: false,
        now: NOW,
        code,
    }
}

/// alice enrolled with a TOTP app (`SECRET`); nobody else.
pub(super) fn world() -> Result<MemStore, String> {
    let s = MemStore::default();
    let secret = Secret::from_base32(SECRET).map_err(|e| e.to_string())?;
    s.enroll(
        "alice",
        Factor::Totp(TotpFactor {
            secret,
            params: Params::DEFAULT,
            enrolled_at: NOW,
        }),
    );
    Ok(s)
}

/// `user`'s login with `answers`, by `req`: the decision and the transcript.
pub(super) fn login_with(
    c: &Config,
    s: &MemStore,
    d: &Sends,
    user: &mut User<'_>,
    req: &Request<'_>,
) -> Decision {
    authenticate(c, s, &Dir, d, user, req)
}

/// `user` logs in at `now` typing `answers`: the decision and the transcript.
pub(super) fn ask<S: Into<String>>(
    c: &Config,
    s: &MemStore,
    d: &Sends,
    user: &str,
    answers: impl IntoIterator<Item = S>,
    now: u64,
) -> (Decision, Vec<String>) {
    let mut conv = User::typing(answers);
    let req = Request {
        now,
        ..req_for(user, CodeSource::Ask)
    };
    let dec = login_with(c, s, d, &mut conv, &req);
    (dec, conv.prompts)
}

/// `user` logs in at `NOW` typing `answers`, nothing sent out of band.
pub(super) fn run_with<S: Into<String>>(
    c: &Config,
    s: &MemStore,
    user: &str,
    answers: impl IntoIterator<Item = S>,
) -> (Decision, Vec<String>) {
    ask(c, s, &Sends::default(), user, answers, NOW)
}

/// `user` types `answer` after a right password, or a wrong one if `failed`.
pub(super) fn run(
    store: &MemStore,
    config: &Config,
    user: &str,
    failed: bool,
    answer: &str,
) -> (Decision, Vec<String>) {
    let mut conv = User::typing([answer]);
    let req = Request {
        password_failed: failed,
        ..req_for(user, CodeSource::Ask)
    };
    let d = login_with(config, store, &Sends::default(), &mut conv, &req);
    (d, conv.prompts)
}

/// alice logs in under the default policy, typing `answer` if asked; the code comes from
/// `code`.
pub(super) fn login(s: &MemStore, answer: String, code: CodeSource) -> (Decision, Vec<String>) {
    let mut conv = User::typing([answer]);
    let req = Request {
        rhost: None,
        ..req_for("alice", code)
    };
    let d = login_with(&Config::default(), s, &Sends::default(), &mut conv, &req);
    (d, conv.prompts)
}

/// The policy with codes by mail: 5 minutes to type them, 2 sends per window.
pub(super) fn with_email(c: &mut Config) {
    c.delivery = crate::delivery::DeliveryPolicy {
        methods: vec![crate::delivery::MethodPolicy {
            method: Method::Email,
            program: "/x".into(),
            run_as: "twofa".into(),
            timeout_seconds: 10,
            code_ttl_seconds: 300,
            settings: vec![],
            destination_pattern: None,
        }],
        max_sends: 2,
        ..Default::default()
    };
}

/// A factor sending codes by mail to `to`.
pub(super) fn email(to: &str) -> Factor {
    Factor::Delivery(DeliveryFactor {
        method: Method::Email,
        to: vec![to.into()],
    })
}

/// `MemStore` and `Dir` behind one recorder of every call made to them, as `"enrollment
/// alice"`, `"lookup bob"`...: what a login did, shown without timing it.
pub(super) struct Recorder<'a> {
    pub(super) store: &'a MemStore,
    pub(super) calls: RefCell<Vec<String>>,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(store: &'a MemStore) -> Self {
        Recorder {
            store,
            calls: RefCell::default(),
        }
    }

    fn note(&self, call: &str, name: &str) {
        self.calls.borrow_mut().push(format!("{call} {name}"));
    }

    /// The calls made, with `name` written `NAME` (so two users' calls can be compared).
    pub(super) fn calls_for(&self, name: &str) -> Vec<String> {
        self.calls
            .borrow()
            .iter()
            .map(|c| match c.split_once(' ') {
                Some((call, n)) if n == name => format!("{call} NAME"),
                _ => c.clone(),
            })
            .collect()
    }
}

impl Store for Recorder<'_> {
    fn enrollment(&self, a: &Account) -> Result<Option<Enrollment>, StoreError> {
        self.note("enrollment", &a.name);
        self.store.enrollment(a)
    }
    fn put_enrollment(&self, a: &Account, e: &Enrollment, replace: bool) -> Result<(), StoreError> {
        self.note("put_enrollment", &a.name);
        self.store.put_enrollment(a, e, replace)
    }
    fn disable_enrollment(&self, a: &Account, now: u64) -> Result<Option<String>, StoreError> {
        self.note("disable_enrollment", &a.name);
        self.store.disable_enrollment(a, now)
    }
    fn enrolled_names(&self) -> Result<Vec<String>, StoreError> {
        self.note("enrolled_names", "-");
        self.store.enrolled_names()
    }
    fn state(&self, a: &Account) -> Result<UserState, StoreError> {
        self.note("state", &a.name);
        self.store.state(a)
    }
    fn update(&self, a: &Account, op: &StateOp) -> Result<OpOutcome, StoreError> {
        self.note("update", &a.name);
        self.store.update(a, op)
    }
}

impl Directory for Recorder<'_> {
    fn lookup(&self, name: &str) -> Result<Option<Account>, LookupError> {
        self.note("lookup", name);
        Dir.lookup(name)
    }
    fn groups(&self, a: &Account) -> Result<Vec<String>, LookupError> {
        self.note("groups", &a.name);
        Dir.groups(a)
    }
}
