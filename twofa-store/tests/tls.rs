//! Reaching the store: the pinned CA and nothing else, plain text only when asked for, and an
//! unreachable or silent server reported as unavailable in bounded time.

mod common;

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{account, start_server, Server, TestEnv, TestResult};
use twofa_core::store::{Store, StoreError};
use twofa_store::pg::PgStore;

/// A second server that offers no TLS at all, shared by the tests that need one.
fn plain_server() -> Result<Option<&'static Server>, Box<dyn std::error::Error>> {
    static PLAIN: OnceLock<Result<Option<&'static Server>, String>> = OnceLock::new();
    PLAIN
        .get_or_init(|| {
            start_server(false)
                .map(|s| s.map(|s| &*Box::leak(Box::new(s))))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(Into::into)
}

fn tls_off(env: &TestEnv) -> String {
    env.settings_text("", "tls = \"off\"\n")
}

#[test]
fn the_pinned_ca_lets_the_store_in() -> TestResult {
    let Some(env) = TestEnv::new("pinned")? else {
        return Ok(());
    };
    env.init()?;
    let checked = env.store()?.check()?;
    assert_eq!(
        checked.server,
        format!("127.0.0.1:{}", env.server.port),
        "{checked:?}"
    );
    Ok(())
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() -> TestResult {
    let Some(env) = TestEnv::new("other_ca")? else {
        return Ok(());
    };
    env.init()?;
    env.dir.write("ca.pem", &env.server.other_ca_pem, 0o644)?;
    match env.store()?.state(&account("alice")) {
        Err(StoreError::Unavailable(m)) => {
            assert!(m.contains("certificate is not from the CA in"), "{m}")
        }
        other => return Err(format!("expected Unavailable, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn a_certificate_for_another_name_is_refused() -> TestResult {
    let Some(env) = TestEnv::new("other_name")? else {
        return Ok(());
    };
    env.init()?;
    // The same server, reached at its address but expected to be db.example: its certificate
    // (for 127.0.0.1 and localhost, from the pinned CA) does not name that host.
    let text = std::fs::read_to_string(&env.settings_path)?
        .replace("host=127.0.0.1", "host=db.example hostaddr=127.0.0.1");
    env.dir.write("store.toml", &text, 0o600)?;
    match env.store()?.state(&account("alice")) {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("certificate"), "{m}"),
        other => return Err(format!("expected Unavailable, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn a_ca_file_others_can_write_is_refused() -> TestResult {
    let Some(env) = TestEnv::new("ca_mode")? else {
        return Ok(());
    };
    env.dir.write("ca.pem", &env.server.ca_pem, 0o666)?;
    match env.store()?.state(&account("alice")) {
        Err(StoreError::Backend(m)) => assert!(m.contains("ca.pem: mode 0666"), "{m}"),
        other => return Err(format!("expected Backend, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn tls_off_works_against_a_server_without_tls() -> TestResult {
    let Some(server) = plain_server()? else {
        return Ok(());
    };
    let env = TestEnv::on(server, "plain")?;
    env.dir.write("store.toml", &tls_off(&env), 0o600)?;
    env.init()?;
    let store = env.store()?;
    store.accept_step(&account("alice"), 3, 3)?;
    assert_eq!(store.state(&account("alice"))?.totp_last_step, Some(3));
    Ok(())
}

#[test]
fn verify_full_never_falls_back_to_plain_text() -> TestResult {
    let Some(server) = plain_server()? else {
        return Ok(());
    };
    let env = TestEnv::on(server, "no_downgrade")?;
    env.dir.write("ca.pem", &server.ca_pem, 0o644)?;
    match env.store()?.state(&account("alice")) {
        Err(e) => assert!(e.to_string().contains("offers no TLS"), "{e}"),
        Ok(_) => return Err("talked to the store without TLS".into()),
    }
    Ok(())
}

#[test]
fn a_stopped_server_is_unavailable_at_once() -> TestResult {
    let Some(server) = start_server(false)? else {
        return Ok(());
    };
    let server: &'static Server = Box::leak(Box::new(server));
    let env = TestEnv::on(server, "stopped")?;
    env.dir.write("store.toml", &tls_off(&env), 0o600)?;
    env.init()?;
    let store = env.store()?;
    store.reset_failures(&account("alice"))?;
    server.stop()?;
    // The open connection is lost: this operation and a fresh store both say so quickly.
    for store in [store, env.store()?] {
        let started = Instant::now();
        match store.accept_step(&account("alice"), 4, 4) {
            Err(StoreError::Unavailable(_)) => {}
            other => return Err(format!("expected Unavailable, got {other:?}").into()),
        }
        let took = started.elapsed();
        assert!(took < Duration::from_millis(2000 + 1000), "took {took:?}");
    }
    Ok(())
}

#[test]
fn a_server_that_accepts_and_never_answers_is_given_up_on_time() -> TestResult {
    let Some(env) = TestEnv::new("silent")? else {
        return Ok(());
    };
    // Accepts connections and never says a word: a frozen database, or a firewall's tarpit.
    let silent = TcpListener::bind("127.0.0.1:0")?;
    let port = silent.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().take(4).flatten() {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let text = std::fs::read_to_string(&env.settings_path)?
        .replace(
            &format!("port={}", env.server.port),
            &format!("port={port}"),
        )
        .replace("connect_timeout_ms = 2000", "connect_timeout_ms = 300");
    env.dir.write("store.toml", &text, 0o600)?;
    let started = Instant::now();
    let result = env.store()?.state(&account("alice"));
    let took = started.elapsed();
    match result {
        Err(StoreError::Unavailable(m)) => assert!(m.contains("no answer within 300 ms"), "{m}"),
        other => return Err(format!("expected Unavailable, got {other:?}").into()),
    }
    assert!(took < Duration::from_millis(300 + 700), "took {took:?}");
    Ok(())
}

#[test]
fn the_settings_password_is_what_logs_in() -> TestResult {
    let Some(env) = TestEnv::new("password")? else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&env.settings_path)?
        .replace(common::STORE_PASSWORD, "not-the-password");
    env.dir.write("store.toml", &text, 0o600)?;
    let store = PgStore::new(env.settings()?, env.key()?);
    match store.state(&account("alice")) {
        // Refused, not unreachable: a wrong password must not make a host fall back quietly.
        Err(StoreError::Backend(m)) => {
            assert!(m.contains("password authentication failed"), "{m}");
            assert!(!m.contains("not-the-password"), "{m}");
        }
        other => return Err(format!("expected Backend, got {other:?}").into()),
    }
    Ok(())
}
