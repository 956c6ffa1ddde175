//! Every Store operation against a real PostgreSQL: the same behaviour as the file store, one
//! transaction each, nothing secret in the database.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{account, enrollment, TestEnv, TestResult, SECRET_B32};
use twofa_core::fleet::HelperStore;
use twofa_core::store::{
    Challenge, ChallengeOutcome, Confirmation, FailureOutcome, Format, Lockout, RecoveryOutcome,
    SendOutcome, StepOutcome, Store, StoreError,
};
use twofa_store::schema::{self, KeyOrigin, SchemaChange};

/// The environment and an initialised store, or skip the test.
macro_rules! env_and_store {
    ($name:expr) => {{
        let Some(env) = TestEnv::new($name)? else {
            return Ok(());
        };
        env.init()?;
        let store = env.store()?;
        (env, store)
    }};
}

#[test]
fn a_step_is_accepted_once_and_older_steps_are_replays() -> TestResult {
    let (_env, s) = env_and_store!("steps");
    let alice = account("alice");
    assert_eq!(s.accept_step(&alice, 100, 1)?, StepOutcome::Accepted);
    assert_eq!(s.accept_step(&alice, 100, 2)?, StepOutcome::Replayed);
    assert_eq!(s.accept_step(&alice, 99, 3)?, StepOutcome::Replayed);
    assert_eq!(s.accept_step(&alice, 101, 4)?, StepOutcome::Accepted);
    assert_eq!(s.state(&alice)?.totp_last_step, Some(101));
    assert_eq!(s.state(&alice)?.last_success_at, Some(4));
    // Another account has its own watermark.
    assert_eq!(
        s.accept_step(&account("bob"), 100, 5)?,
        StepOutcome::Accepted
    );
    Ok(())
}

#[test]
fn an_enrollment_confirmation_is_spent_and_is_no_login() -> TestResult {
    let (_env, s) = env_and_store!("confirmation");
    let alice = account("alice");
    assert_eq!(
        s.spend_confirmation(&alice, Confirmation::Totp(100))?,
        StepOutcome::Accepted
    );
    assert_eq!(s.accept_step(&alice, 100, 2)?, StepOutcome::Replayed);
    let state = s.state(&alice)?;
    assert_eq!(
        (state.totp_last_step, state.last_success_at),
        (Some(100), None)
    );
    Ok(())
}

#[test]
fn max_failures_lock_the_account_and_a_locked_account_takes_no_code() -> TestResult {
    let (_env, s) = env_and_store!("lockout");
    let alice = account("alice");
    let lockout = Lockout {
        max_failures: 3,
        window: 900,
        duration: 300,
    };
    assert_eq!(
        s.record_failure(&alice, 10, &lockout)?,
        FailureOutcome::Counted(1)
    );
    assert_eq!(
        s.record_failure(&alice, 11, &lockout)?,
        FailureOutcome::Counted(2)
    );
    assert_eq!(
        s.record_failure(&alice, 12, &lockout)?,
        FailureOutcome::Locked(312)
    );
    assert_eq!(
        s.record_failure(&alice, 13, &lockout)?,
        FailureOutcome::AlreadyLocked(312)
    );
    assert_eq!(s.accept_step(&alice, 7, 14)?, StepOutcome::Locked(312));
    assert_eq!(
        s.consume_recovery(&alice, &"aa".repeat(32), 15)?,
        RecoveryOutcome::Locked(312)
    );
    // The lock ends on time; an admin's unlock ends it at once.
    assert_eq!(s.accept_step(&alice, 7, 312)?, StepOutcome::Accepted);
    s.record_failure(&alice, 400, &lockout)?;
    s.record_failure(&alice, 401, &lockout)?;
    s.record_failure(&alice, 402, &lockout)?;
    assert!(s.state(&alice)?.locked_at(403).is_some());
    s.reset_failures(&alice)?;
    let state = s.state(&alice)?;
    assert_eq!((state.failures, state.locked_until), (0, None));
    assert_eq!(s.accept_step(&alice, 8, 404)?, StepOutcome::Accepted);
    Ok(())
}

#[test]
fn a_success_clears_the_failure_count() -> TestResult {
    let (_env, s) = env_and_store!("success_resets");
    let alice = account("alice");
    s.record_failure(&alice, 10, &Lockout::DEFAULT)?;
    s.record_failure(&alice, 11, &Lockout::DEFAULT)?;
    assert_eq!(s.state(&alice)?.failures, 2);
    assert_eq!(s.state(&alice)?.last_failure_at, Some(11));
    s.accept_step(&alice, 5, 12)?;
    assert_eq!(s.state(&alice)?.failures, 0);
    Ok(())
}

/// The state text the sequence below leaves in the version 1 form, as every release before
/// version 2 wrote it (twofa-core has the same sequence and text): hosts of a fleet upgrade
/// one by one and share these rows, so until the switch is on it must never change.
const GOLDEN_SEQUENCE_STATE_TEXT: &str =
    include_str!("../../twofa-core/tests/fixtures/state-v1-golden.toml");

/// The operations of the golden texts, with the outcomes each must give; the last failure is
/// the `last`-th counted (version 1 restarts the count at a lock, version 2 does not).
fn run_golden_sequence(s: &dyn Store, last: u32) -> TestResult {
    let a = account("alice");
    let lockout = Lockout {
        max_failures: 3,
        window: 900,
        duration: 300,
    };
    let salt = [7u8; 16];
    let challenge = Challenge {
        salt: twofa_core::recovery::to_hex(&salt),
        hash: twofa_core::recovery::to_hex(&twofa_core::recovery::hash(&salt, b"424242")),
        expires: 2000,
    };
    assert_eq!(s.accept_step(&a, 100, 1000)?, StepOutcome::Accepted);
    assert_eq!(s.accept_hotp(&a, 12, 10, 1001)?, StepOutcome::Accepted);
    let hash = "ab".repeat(32);
    assert_eq!(
        s.consume_recovery(&a, &hash, 1002)?,
        RecoveryOutcome::Consumed
    );
    s.remember_host(&a, "192.0.2.7", 1003, 5000)?;
    assert_eq!(s.count_send(&a, 1004, 3, 600)?, SendOutcome::Allowed);
    s.put_challenge(&a, challenge)?;
    assert_eq!(
        s.take_challenge(&a, b"000000", 1005)?,
        ChallengeOutcome::Wrong
    );
    assert_eq!(
        s.record_failure(&a, 1006, &lockout)?,
        FailureOutcome::Counted(1)
    );
    assert_eq!(
        s.record_failure(&a, 1007, &lockout)?,
        FailureOutcome::Counted(2)
    );
    assert_eq!(
        s.record_failure(&a, 1008, &lockout)?,
        FailureOutcome::Locked(1308)
    );
    assert_eq!(s.accept_step(&a, 101, 1100)?, StepOutcome::Locked(1308));
    assert_eq!(s.accept_step(&a, 99, 1400)?, StepOutcome::Replayed);
    assert_eq!(
        s.record_failure(&a, 1401, &lockout)?,
        FailureOutcome::Counted(last)
    );
    Ok(())
}

fn state_row(env: &TestEnv, name: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(env
        .admin()?
        .query_one("SELECT state FROM twofa_state WHERE account = $1", &[&name])?
        .try_get(0)?)
}

/// Turns the fleet's state format switch on, as `twofa-enroll store init --state-format 2`.
fn switch_on(env: &TestEnv) -> TestResult {
    let mut client = twofa_store::pg::connect(&env.settings()?)?;
    schema::set_state_format(&mut client, Format::V2)?;
    Ok(())
}

#[test]
fn until_the_switch_is_on_the_state_row_is_what_twofa_always_wrote() -> TestResult {
    let (env, s) = env_and_store!("golden");
    run_golden_sequence(&s, 1)?;
    assert_eq!(state_row(&env, "alice")?, GOLDEN_SEQUENCE_STATE_TEXT);
    Ok(())
}

/// The state text of the same sequence once the switch is on (twofa-core's file store
/// writes it too).
const GOLDEN_SEQUENCE_STATE_TEXT_V2: &str =
    include_str!("../../twofa-core/tests/fixtures/state-v2-golden.toml");

#[test]
fn once_the_switch_is_on_the_state_row_is_the_version_2_form() -> TestResult {
    let (env, _) = env_and_store!("golden_v2");
    switch_on(&env)?;
    let s = env.store()?;
    run_golden_sequence(&s, 4)?;
    assert_eq!(state_row(&env, "alice")?, GOLDEN_SEQUENCE_STATE_TEXT_V2);
    assert_eq!(s.check()?.state_format, Format::V2);
    Ok(())
}

/// The guesser's trick against a fixed window (failures around its boundary) works until the
/// switch is on, as with the previous release; once it is on, the same failures lock.
#[test]
fn the_sliding_window_needs_the_switch_and_the_fixed_window_holds_until_then() -> TestResult {
    let (env, s) = env_and_store!("sliding");
    let lockout = Lockout {
        max_failures: 3,
        window: 100,
        duration: 50,
    };
    let around_a_boundary = |s: &dyn Store, who: &str| -> Result<Vec<FailureOutcome>, StoreError> {
        let a = account(who);
        [1000, 1090, 1110, 1120]
            .iter()
            .map(|&t| s.record_failure(&a, t, &lockout))
            .collect()
    };
    assert_eq!(
        around_a_boundary(&s, "alice")?,
        [1, 2, 1, 2].map(FailureOutcome::Counted)
    );
    assert!(state_row(&env, "alice")?.contains("\nversion = 1\n"));
    switch_on(&env)?;
    // The switch is read at each connection (a login's helper makes its own).
    let s = env.store()?;
    assert_eq!(
        around_a_boundary(&s, "bob")?,
        [
            FailureOutcome::Counted(1),
            FailureOutcome::Counted(2),
            FailureOutcome::Counted(3),
            FailureOutcome::Locked(1170)
        ]
    );
    let bob = s.state(&account("bob"))?;
    assert_eq!((bob.failures, bob.locked_until), (4, Some(1170)));
    Ok(())
}

/// A row the previous release wrote is read by this one, before and after the switch; after
/// it, its next change writes the version 2 form and its failures still count.
#[test]
fn a_row_of_the_previous_release_is_read_and_moved_forward_by_the_switch() -> TestResult {
    let (env, s) = env_and_store!("old_row");
    let old = GOLDEN_SEQUENCE_STATE_TEXT.replace("1401", "1500");
    env.admin()?.execute(
        "INSERT INTO twofa_state (account, state) VALUES ('alice', $1)",
        &[&old],
    )?;
    let alice = account("alice");
    let state = s.state(&alice)?;
    assert_eq!((state.failures, state.totp_last_step), (1, Some(100)));
    assert_eq!(s.accept_step(&alice, 100, 1600)?, StepOutcome::Replayed);
    assert_eq!(
        state_row(&env, "alice")?,
        old,
        "unchanged: nothing to write"
    );
    switch_on(&env)?;
    let s = env.store()?;
    let lockout = Lockout {
        max_failures: 3,
        window: 900,
        duration: 300,
    };
    assert_eq!(
        s.record_failure(&alice, 1600, &lockout)?,
        FailureOutcome::Counted(2)
    );
    assert_eq!(
        s.record_failure(&alice, 1601, &lockout)?,
        FailureOutcome::Locked(1901)
    );
    let row = state_row(&env, "alice")?;
    assert!(row.contains("\nversion = 2\nfailures = 3\n"), "{row}");
    assert!(!row.contains("first_failure_at"), "{row}");
    Ok(())
}

/// An older release that meets a version 2 row refuses it with what its reader says: the
/// same reader in this release names the versions it reads.
#[test]
fn a_row_in_a_newer_form_than_this_twofa_knows_is_refused_with_the_version() -> TestResult {
    let (env, s) = env_and_store!("newer_row");
    env.admin()?.execute(
        "INSERT INTO twofa_state (account, state) VALUES ('alice', 'version = 3\nfailures = 0\n')",
        &[],
    )?;
    let err = s
        .record_failure(&account("alice"), 10, &Lockout::DEFAULT)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "store: the state of alice in the store is not valid: 1: key `version`: version 3 \
             is not known to this twofa (it reads versions 1 to 2): upgrade twofa on this host"
        )
    );
    Ok(())
}

#[test]
fn a_recovery_code_works_once() -> TestResult {
    let (_env, s) = env_and_store!("recovery");
    let alice = account("alice");
    let code = "aa".repeat(32);
    assert_eq!(
        s.consume_recovery(&alice, &code, 10)?,
        RecoveryOutcome::Consumed
    );
    assert_eq!(
        s.consume_recovery(&alice, &code, 11)?,
        RecoveryOutcome::AlreadyUsed
    );
    assert_eq!(
        s.consume_recovery(&alice, &"bb".repeat(32), 12)?,
        RecoveryOutcome::Consumed
    );
    assert_eq!(s.state(&alice)?.used_recovery.len(), 2);
    Ok(())
}

fn challenge_for(code: &[u8], expires: u64) -> Challenge {
    let salt = vec![0x5a; 16];
    Challenge {
        salt: twofa_core::recovery::to_hex(&salt),
        hash: twofa_core::recovery::to_hex(&twofa_core::recovery::hash(&salt, code)),
        expires,
    }
}

#[test]
fn an_out_of_band_code_is_valid_once_and_wrong_or_expired_codes_fail() -> TestResult {
    let (_env, s) = env_and_store!("challenge");
    let alice = account("alice");
    assert_eq!(
        s.take_challenge(&alice, b"123456", 10)?,
        ChallengeOutcome::Wrong,
        "nothing pending"
    );
    s.put_challenge(&alice, challenge_for(b"123456", 100))?;
    assert_eq!(
        s.take_challenge(&alice, b"654321", 10)?,
        ChallengeOutcome::Wrong
    );
    assert_eq!(
        s.take_challenge(&alice, b"123456", 11)?,
        ChallengeOutcome::Valid
    );
    assert_eq!(
        s.take_challenge(&alice, b"123456", 12)?,
        ChallengeOutcome::Wrong,
        "spent"
    );
    s.put_challenge(&alice, challenge_for(b"777777", 100))?;
    assert_eq!(
        s.take_challenge(&alice, b"777777", 100)?,
        ChallengeOutcome::Expired
    );
    assert_eq!(
        s.state(&alice)?.challenge,
        None,
        "an expired code is dropped"
    );
    // A resend replaces the pending code.
    s.put_challenge(&alice, challenge_for(b"111111", 500))?;
    s.put_challenge(&alice, challenge_for(b"222222", 500))?;
    assert_eq!(
        s.take_challenge(&alice, b"111111", 200)?,
        ChallengeOutcome::Wrong
    );
    assert_eq!(
        s.take_challenge(&alice, b"222222", 201)?,
        ChallengeOutcome::Valid
    );
    Ok(())
}

#[test]
fn the_send_limit_holds_within_its_window() -> TestResult {
    let (_env, s) = env_and_store!("send_limit");
    let alice = account("alice");
    assert_eq!(s.count_send(&alice, 100, 2, 600)?, SendOutcome::Allowed);
    assert_eq!(s.count_send(&alice, 101, 2, 600)?, SendOutcome::Allowed);
    assert_eq!(s.count_send(&alice, 102, 2, 600)?, SendOutcome::Limited);
    assert_eq!(
        s.state(&alice)?.sends,
        vec![100, 101],
        "a refused send is not counted"
    );
    assert_eq!(s.count_send(&alice, 700, 2, 600)?, SendOutcome::Allowed);
    Ok(())
}

#[test]
fn a_remembered_host_is_remembered_until_its_time() -> TestResult {
    let (_env, s) = env_and_store!("remember");
    let alice = account("alice");
    s.remember_host(&alice, "192.0.2.7", 100, 200)?;
    s.remember_host(&alice, "198.51.100.1", 100, 150)?;
    let state = s.state(&alice)?;
    assert!(state.host_remembered("192.0.2.7", 199));
    assert!(!state.host_remembered("192.0.2.7", 200));
    assert!(state.host_remembered("198.51.100.1", 120));
    assert!(!state.host_remembered("203.0.113.9", 120));
    assert!(!s.state(&account("bob"))?.host_remembered("192.0.2.7", 120));
    Ok(())
}

#[test]
fn an_hotp_counter_is_accepted_once_and_moves_past_the_match() -> TestResult {
    let (_env, s) = env_and_store!("hotp");
    let alice = account("alice");
    assert_eq!(
        s.accept_hotp(&alice, 5, 10, 1)?,
        StepOutcome::Replayed,
        "below the start"
    );
    assert_eq!(s.accept_hotp(&alice, 12, 10, 2)?, StepOutcome::Accepted);
    assert_eq!(s.state(&alice)?.hotp_next, Some(13));
    assert_eq!(s.accept_hotp(&alice, 12, 10, 3)?, StepOutcome::Replayed);
    assert_eq!(s.accept_hotp(&alice, 11, 10, 4)?, StepOutcome::Replayed);
    assert_eq!(s.accept_hotp(&alice, 13, 10, 5)?, StepOutcome::Accepted);
    Ok(())
}

#[test]
fn an_enrollment_reads_back_and_is_not_replaced_without_replace() -> TestResult {
    let (_env, s) = env_and_store!("put");
    let alice = account("alice");
    assert!(s.enrollment(&alice)?.is_none());
    s.put_enrollment(&alice, &enrollment("alice", SECRET_B32)?, false)?;
    let back = s.enrollment(&alice)?.ok_or("no enrollment")?;
    assert_eq!(
        back.totp().map(|t| t.secret.to_base32().to_string()),
        Some(SECRET_B32.to_string())
    );
    assert_eq!(back.hotp().map(|h| h.counter), Some(10));
    let other = enrollment("alice", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?;
    match s.put_enrollment(&alice, &other, false) {
        Err(StoreError::AlreadyEnrolled(name)) => assert_eq!(name, "alice"),
        other => return Err(format!("expected AlreadyEnrolled, got {other:?}").into()),
    }
    let still = s.enrollment(&alice)?.ok_or("no enrollment")?;
    assert_eq!(
        still.totp().map(|t| t.secret.to_base32().to_string()),
        Some(SECRET_B32.to_string()),
        "the refused write changed nothing"
    );
    s.put_enrollment(&alice, &other, true)?;
    let replaced = s.enrollment(&alice)?.ok_or("no enrollment")?;
    assert_eq!(
        replaced.totp().map(|t| t.secret.to_base32().to_string()),
        Some("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".to_string())
    );
    Ok(())
}

#[test]
fn a_new_secret_starts_without_the_old_watermark_and_the_same_secret_keeps_it() -> TestResult {
    let (_env, s) = env_and_store!("follow");
    let alice = account("alice");
    s.put_enrollment(&alice, &enrollment("alice", SECRET_B32)?, false)?;
    s.accept_step(&alice, 1000, 1)?;
    s.accept_hotp(&alice, 20, 10, 2)?;
    s.consume_recovery(&alice, &"aa".repeat(32), 3)?;
    // The same secrets again (say, an admin re-ran enroll with --secret-file): all kept.
    s.put_enrollment(&alice, &enrollment("alice", SECRET_B32)?, true)?;
    let state = s.state(&alice)?;
    assert_eq!(state.totp_last_step, Some(1000));
    assert_eq!(state.hotp_next, Some(21));
    assert_eq!(state.used_recovery, vec!["aa".repeat(32)]);
    // A new secret: an old code's step may be used again with the new secret.
    s.put_enrollment(
        &alice,
        &enrollment("alice", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")?,
        true,
    )?;
    let state = s.state(&alice)?;
    assert_eq!(state.totp_last_step, None);
    assert_eq!(state.hotp_next, None);
    assert_eq!(s.accept_step(&alice, 1000, 4)?, StepOutcome::Accepted);
    Ok(())
}

#[test]
fn disable_moves_the_enrollment_to_twofa_disabled() -> TestResult {
    let (env, s) = env_and_store!("disable");
    let alice = account("alice");
    assert_eq!(s.disable_enrollment(&alice, 1_700_000_500)?, None);
    s.put_enrollment(&alice, &enrollment("alice", SECRET_B32)?, false)?;
    let said = s
        .disable_enrollment(&alice, 1_700_000_500)?
        .ok_or("nothing disabled")?;
    assert!(said.starts_with("table twofa_disabled, id "), "{said}");
    assert!(s.enrollment(&alice)?.is_none());
    assert!(s.enrolled_names()?.is_empty());
    let id: i64 = said.rsplit(' ').next().ok_or("no id")?.parse()?;
    let row = env.admin()?.query_one(
        "SELECT account, disabled_at, length(sealed) > 0 FROM twofa_disabled WHERE id = $1",
        &[&id],
    )?;
    assert_eq!(row.try_get::<_, String>(0)?, "alice");
    assert_eq!(row.try_get::<_, i64>(1)?, 1_700_000_500);
    assert!(row.try_get::<_, bool>(2)?);
    // Enrolling again works, and a second disable keeps both backups.
    s.put_enrollment(&alice, &enrollment("alice", SECRET_B32)?, false)?;
    s.disable_enrollment(&alice, 1_700_000_600)?;
    let n: i64 = env
        .admin()?
        .query_one("SELECT count(*) FROM twofa_disabled", &[])?
        .try_get(0)?;
    assert_eq!(n, 2);
    Ok(())
}

#[test]
fn enrolled_names_are_listed_sorted() -> TestResult {
    let (_env, s) = env_and_store!("names");
    for name in ["carol", "Bob", "alice", "dave.smith", "zoë"] {
        s.put_enrollment(&account(name), &enrollment(name, SECRET_B32)?, false)?;
    }
    assert_eq!(
        s.enrolled_names()?,
        vec!["Bob", "alice", "carol", "dave.smith", "zoë"]
    );
    Ok(())
}

#[test]
fn an_operation_that_changes_nothing_writes_nothing() -> TestResult {
    let (env, s) = env_and_store!("no_write");
    s.reset_failures(&account("nobody"))?;
    assert_eq!(
        s.take_challenge(&account("nobody"), b"1", 1)?,
        ChallengeOutcome::Wrong
    );
    let n: i64 = env
        .admin()?
        .query_one("SELECT count(*) FROM twofa_state", &[])?
        .try_get(0)?;
    assert_eq!(n, 0);
    Ok(())
}

#[test]
fn sixteen_hosts_presenting_the_same_code_get_one_acceptance() -> TestResult {
    let Some(env) = TestEnv::new("race")? else {
        return Ok(());
    };
    env.init()?;
    let hosts = 16;
    let barrier = Arc::new(Barrier::new(hosts));
    let mut threads = Vec::new();
    for _ in 0..hosts {
        // Each thread is a host: its own store and connection, connected before the race.
        let store = env.store()?;
        store.state(&account("alice"))?;
        let barrier = Arc::clone(&barrier);
        threads.push(std::thread::spawn(move || {
            barrier.wait();
            store
                .accept_step(&account("alice"), 55_000_000, 1_650_000_000)
                .map_err(|e| e.to_string())
        }));
    }
    let mut outcomes = Vec::new();
    for t in threads {
        outcomes.push(t.join().map_err(|_| "a thread panicked")??);
    }
    let accepted = outcomes
        .iter()
        .filter(|o| **o == StepOutcome::Accepted)
        .count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == StepOutcome::Replayed)
            .count(),
        hosts - 1
    );
    Ok(())
}

#[test]
fn the_secret_never_appears_in_the_database_or_a_dump() -> TestResult {
    let (env, s) = env_and_store!("sealed");
    s.put_enrollment(&account("alice"), &enrollment("alice", SECRET_B32)?, false)?;
    s.disable_enrollment(&account("alice"), 5)?;
    s.put_enrollment(&account("alice"), &enrollment("alice", SECRET_B32)?, false)?;
    let raw = twofa_core::secret::Secret::from_base32(SECRET_B32)?
        .bytes()
        .to_vec();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // In any spelling a reader of the table could meet: base32 as the app shows it, the raw
    // key bytes, and either of them hex-encoded (how text output shows a bytea).
    let needles: Vec<Vec<u8>> = vec![
        SECRET_B32.as_bytes().to_vec(),
        SECRET_B32.as_bytes()[..16].to_vec(),
        raw.clone(),
        hex(SECRET_B32.as_bytes()).into_bytes(),
        hex(&raw).into_bytes(),
        b"[[factor]]".to_vec(),
        hex(b"[[factor]]").into_bytes(),
    ];
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);

    let mut admin = env.admin()?;
    let mut seen: Vec<u8> = Vec::new();
    for table in [
        "twofa_enrollments",
        "twofa_disabled",
        "twofa_state",
        "twofa_meta",
    ] {
        for row in admin.query(&format!("SELECT t::text FROM {table} t"), &[])? {
            seen.extend_from_slice(row.try_get::<_, String>(0)?.as_bytes());
        }
    }
    let mut sealed_rows = 0;
    for row in admin.query(
        "SELECT sealed FROM twofa_enrollments UNION ALL SELECT sealed FROM twofa_disabled",
        &[],
    )? {
        seen.extend_from_slice(&row.try_get::<_, Vec<u8>>(0)?);
        sealed_rows += 1;
    }
    assert_eq!(sealed_rows, 2, "both sealed rows were read");
    assert!(contains(&seen, b"alice"), "the rows were read");
    let dump = env.server.run_as_postgres(
        "pg_dump",
        &["--inserts", "-n", &env.schema, common::DATABASE],
    )?;
    assert!(dump.contains("twofa_enrollments"));
    for (what, hay) in [("the tables", &seen[..]), ("pg_dump", dump.as_bytes())] {
        for needle in &needles {
            assert!(
                !contains(hay, needle),
                "{what} hold {:?} in clear",
                String::from_utf8_lossy(needle)
            );
        }
    }
    Ok(())
}

#[test]
fn a_row_copied_onto_another_account_is_refused_not_a_login() -> TestResult {
    let (env, s) = env_and_store!("moved");
    s.put_enrollment(&account("alice"), &enrollment("alice", SECRET_B32)?, false)?;
    env.admin()?.batch_execute(
        "INSERT INTO twofa_enrollments (account, sealed, updated_at)
         SELECT 'root', sealed, updated_at FROM twofa_enrollments WHERE account = 'alice'",
    )?;
    match s.enrollment(&account("root")) {
        Err(StoreError::Backend(m)) => assert_eq!(
            m,
            "enrollment of root does not decrypt with this host's fleet key (wrong key, or the \
             row was moved)"
        ),
        other => return Err(format!("expected a Backend error, got {other:?}").into()),
    }
    // alice's own row still works.
    assert!(s.enrollment(&account("alice"))?.is_some());
    Ok(())
}

#[test]
fn a_damaged_state_row_is_a_backend_error_naming_the_account() -> TestResult {
    let (env, s) = env_and_store!("bad_state");
    s.accept_step(&account("alice"), 5, 1)?;
    env.admin()?
        .batch_execute("UPDATE twofa_state SET state = 'version = 1\nfailures = \"x\"\n'")?;
    match s.accept_step(&account("alice"), 6, 2) {
        Err(StoreError::Backend(m)) => {
            assert!(m.contains("state of alice"), "{m}");
            assert!(m.contains("failures"), "{m}");
        }
        other => return Err(format!("expected a Backend error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn a_wrong_fleet_key_is_refused_before_anything_is_read() -> TestResult {
    let (env, s) = env_and_store!("wrong_key");
    s.put_enrollment(&account("alice"), &enrollment("alice", SECRET_B32)?, false)?;
    env.dir
        .write("fleet.key", &format!("{}\n", "ab".repeat(32)), 0o600)?;
    let other_host = env.store()?;
    let through_the_helper = HelperStore::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_twofa-store")),
        &env.settings_path,
        Duration::from_secs(20),
    );
    for result in [
        other_host.check().map(|_| ()),
        other_host.enrollment(&account("alice")).map(|_| ()),
        other_host.accept_step(&account("alice"), 9, 9).map(|_| ()),
        through_the_helper.enrollment(&account("alice")).map(|_| ()),
    ] {
        match result {
            Err(StoreError::Backend(m)) => {
                assert!(m.contains("fleet key is not the store's"), "{m}")
            }
            other => return Err(format!("expected a Backend error, got {other:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn a_schema_of_another_version_is_refused_with_what_to_do() -> TestResult {
    let (env, s) = env_and_store!("versions");
    assert_eq!(s.check()?.schema_version, 1);
    let mut admin = env.admin()?;
    admin.batch_execute("UPDATE twofa_meta SET value = '7' WHERE key = 'schema_version'")?;
    match env.store()?.check() {
        Err(StoreError::Backend(m)) => assert_eq!(
            m,
            "the store's schema is version 7, newer than this twofa (it knows up to 1): upgrade \
             twofa on this host"
        ),
        other => return Err(format!("expected a Backend error, got {other:?}").into()),
    }
    admin.batch_execute("UPDATE twofa_meta SET value = '0' WHERE key = 'schema_version'")?;
    match env.store()?.state(&account("alice")) {
        Err(StoreError::Backend(m)) => assert_eq!(
            m,
            "the store's schema is version 0, this twofa needs 1: run `twofa-enroll store init`"
        ),
        other => return Err(format!("expected a Backend error, got {other:?}").into()),
    }
    admin.batch_execute("DROP TABLE twofa_meta")?;
    match env.store()?.state(&account("alice")) {
        Err(StoreError::Backend(m)) => assert!(m.contains("version 0"), "{m}"),
        other => return Err(format!("expected a Backend error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn init_twice_does_nothing_the_second_time_and_migrates_a_later_step() -> TestResult {
    let Some(env) = TestEnv::new("init")? else {
        return Ok(());
    };
    let settings = env.settings()?;
    let key = env.key()?;
    let mut client = twofa_store::pg::connect(&settings)?;
    let first = schema::init(&mut client, &key, KeyOrigin::File, || Ok(()))?;
    assert_eq!(first.schema, SchemaChange::Created(1));
    assert!(first.key_check_written);
    let second = schema::init(&mut client, &key, KeyOrigin::File, || Ok(()))?;
    assert_eq!(second.schema, SchemaChange::Current(1));
    assert!(!second.key_check_written);
    let mut steps = schema::MIGRATIONS.to_vec();
    steps.push("ALTER TABLE twofa_state ADD COLUMN note text");
    let third = schema::migrate(&mut client, &key, KeyOrigin::File, &steps, || Ok(()))?;
    assert_eq!(third.schema, SchemaChange::Migrated(1, 2));
    let version: String = env
        .admin()?
        .query_one(
            "SELECT value FROM twofa_meta WHERE key = 'schema_version'",
            &[],
        )?
        .try_get(0)?;
    assert_eq!(version, "2");
    Ok(())
}

#[test]
fn a_failed_init_commits_nothing() -> TestResult {
    let Some(env) = TestEnv::new("init_rollback")? else {
        return Ok(());
    };
    let mut client = twofa_store::pg::connect(&env.settings()?)?;
    let failed = schema::init(&mut client, &env.key()?, KeyOrigin::New, || {
        Err(StoreError::Backend("could not write the key file".into()))
    });
    assert!(failed.is_err());
    let exists: bool = env
        .admin()?
        .query_one("SELECT to_regclass('twofa_meta') IS NOT NULL", &[])?
        .try_get(0)?;
    assert!(!exists, "no schema without the key file");
    Ok(())
}

#[test]
fn the_helper_serves_the_store_protocol() -> TestResult {
    let (env, _s) = env_and_store!("serve");
    let helper = HelperStore::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_twofa-store")),
        &env.settings_path,
        Duration::from_secs(20),
    );
    let alice = account("alice");
    helper.put_enrollment(&alice, &enrollment("alice", SECRET_B32)?, false)?;
    assert_eq!(helper.enrolled_names()?, vec!["alice"]);
    assert!(matches!(
        helper.put_enrollment(&alice, &enrollment("alice", SECRET_B32)?, false),
        Err(StoreError::AlreadyEnrolled(_))
    ));
    assert_eq!(helper.accept_step(&alice, 10, 1)?, StepOutcome::Accepted);
    assert_eq!(helper.accept_step(&alice, 10, 2)?, StepOutcome::Replayed);
    let back = helper.enrollment(&alice)?.ok_or("no enrollment")?;
    assert_eq!(
        back.totp().map(|t| t.secret.to_base32().to_string()),
        Some(SECRET_B32.to_string())
    );
    // The same database seen directly: one store, whichever way it is reached.
    assert_eq!(env.store()?.state(&alice)?.totp_last_step, Some(10));
    Ok(())
}

#[test]
fn the_helper_answers_a_broken_settings_file_with_its_line() -> TestResult {
    let Some(env) = TestEnv::new("serve_broken")? else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&env.settings_path)?
        .replace("connect_timeout_ms", "colour = 1\nconnect_timeout_ms");
    env.dir.write("store.toml", &text, 0o600)?;
    let helper = HelperStore::new(
        std::path::Path::new(env!("CARGO_BIN_EXE_twofa-store")),
        &env.settings_path,
        Duration::from_secs(20),
    );
    match helper.state(&account("alice")) {
        Err(StoreError::Backend(m)) => assert_eq!(
            m,
            format!(
                "{}:7: key `postgres.colour`: unknown key",
                env.settings_path.display()
            )
        ),
        other => return Err(format!("expected a Backend error, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn a_module_of_protocol_1_is_refused_by_the_helper_as_an_error_and_changes_nothing() -> TestResult {
    use std::io::Write;
    let (env, s) = env_and_store!("old_module");
    // What a module of protocol 1 sent: no protocol line, a request word per operation.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twofa-store"))
        .arg("serve")
        .arg("--settings")
        .arg(&env.settings_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(b"state x616c696365 1000 1000\naccept_step x616c696365 1000 1000 57 1710\n")?;
    let out = child.wait_with_output()?;
    let replies = String::from_utf8(out.stdout)?;
    let replies: Vec<&str> = replies.lines().collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    for reply in replies {
        match twofa_core::wire::parse_reply(reply) {
            Err(StoreError::Backend(m)) => assert!(
                m.contains("twofa-store speaks store protocol 2")
                    && m.contains("it speaks store protocol 1"),
                "{m}"
            ),
            other => return Err(format!("expected a backend error, got {other:?}").into()),
        }
    }
    assert_eq!(s.state(&account("alice"))?.totp_last_step, None);
    let rows: i64 = env
        .admin()?
        .query_one("SELECT count(*) FROM twofa_state", &[])?
        .try_get(0)?;
    assert_eq!(rows, 0);
    Ok(())
}
