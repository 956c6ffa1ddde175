//! The pushover method against an in-process HTTPS server on 127.0.0.1 that checks requests and
//! answers like the real Messages API.

mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// What the fake API received.
#[derive(Debug, Default)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    form: HashMap<String, String>,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or(b"")).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_request(stream: &mut impl Read) -> io::Result<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let mut request = Request {
        method: request_line.next().unwrap_or("").to_string(),
        path: request_line.next().unwrap_or("").to_string(),
        ..Request::default()
    };
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request
                .headers
                .insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = request
        .headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    for pair in String::from_utf8_lossy(&body).split('&') {
        if let Some((name, value)) = pair.split_once('=') {
            request
                .form
                .insert(percent_decode(name), percent_decode(value));
        }
    }
    Ok(request)
}

/// The real API's answers (https://pushover.net/api#response).
fn answer(request: &Request, user_key: &str) -> (u16, String) {
    if request.method != "POST" || request.path != "/1/messages.json" {
        return (404, r#"{"errors":["not found"],"status":0}"#.into());
    }
    let rid = "5042853c-402d-4a18-abcb-168734a801de";
    if request.form.get("token").map(String::as_str) != Some(TOKEN) {
        return (
            400,
            format!(
                r#"{{"token":"invalid","errors":["application token is invalid"],"status":0,"request":"{rid}"}}"#
            ),
        );
    }
    if request.form.get("user").map(String::as_str) != Some(user_key) {
        return (
            400,
            format!(
                r#"{{"user":"invalid","errors":["user identifier is invalid"],"status":0,"request":"{rid}"}}"#
            ),
        );
    }
    if request.form.get("message").is_none_or(String::is_empty) {
        return (
            400,
            format!(
                r#"{{"message":"cannot be blank","errors":["message cannot be blank"],"status":0,"request":"{rid}"}}"#
            ),
        );
    }
    (200, format!(r#"{{"status":1,"request":"{rid}"}}"#))
}

fn start(
    config: Arc<ServerConfig>,
    user_key: &'static str,
) -> io::Result<(u16, JoinHandle<io::Result<Request>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let handle = std::thread::spawn(move || {
        let (sock, _) = listener.accept()?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(conn, sock);
        let request = read_request(&mut stream)?;
        let (status, body) = answer(&request, user_key);
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        write!(
            stream,
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n\
             X-Limit-App-Remaining: 9999\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()?;
        stream.conn.send_close_notify();
        let _ = stream.flush();
        Ok(request)
    });
    Ok((port, handle))
}

fn settings(port: u16, ca_file: &str) -> String {
    format!(
        "api_url = \"https://127.0.0.1:{port}/1/messages.json\"\ntoken = \"{TOKEN}\"\n\
         ca_file = \"{ca_file}\"\ntitle = \"Login to {{host}}\"\ntimeout_seconds = 5\n"
    )
}

fn join(handle: JoinHandle<io::Result<Request>>) -> io::Result<Request> {
    handle
        .join()
        .map_err(|_| io::Error::other("server thread panicked"))?
}

#[test]
fn the_code_is_posted_as_a_form_the_api_accepts() -> TestResult {
    let cert = TestCert::new()?;
    let (port, handle) = start(Arc::clone(&cert.server), USER_KEY)?;
    let output = deliver("pushover", USER_KEY, &settings(port, &cert.ca_file()))?;
    assert!(output.status.success(), "stderr: {}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let request = join(handle)?;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/1/messages.json");
    assert_eq!(
        request.headers.get("content-type").map(String::as_str),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        request.headers.get("host").map(String::as_str),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(request.form.get("token").map(String::as_str), Some(TOKEN));
    assert_eq!(request.form.get("user").map(String::as_str), Some(USER_KEY));
    assert_eq!(request.form.get("ttl").map(String::as_str), Some("300"));
    assert!(!request.form.contains_key("priority"));
    let message = request.form.get("message").cloned().unwrap_or_default();
    assert!(
        message.contains(CODE) && message.contains("alice"),
        "{message}"
    );
    let title = request.form.get("title").cloned().unwrap_or_default();
    assert!(title.starts_with("Login to ") && title.len() > 9, "{title}");
    Ok(())
}

#[test]
fn an_invalid_user_key_is_reported_with_the_api_error_and_no_token() -> TestResult {
    let cert = TestCert::new()?;
    let (port, handle) = start(Arc::clone(&cert.server), "gznej3rKEVAvPUxu9vvNnqpmZpokzF")?;
    let output = deliver("pushover", USER_KEY, &settings(port, &cert.ca_file()))?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    assert_eq!(
        stderr(&output).trim_end(),
        "twofa-deliver: Pushover refused the message (HTTP 400): user identifier is invalid"
    );
    join(handle)?;
    Ok(())
}

#[test]
fn an_untrusted_api_certificate_is_refused_before_the_token_is_sent() -> TestResult {
    let cert = TestCert::new()?;
    let other = TestCert::new()?;
    let (port, handle) = start(Arc::clone(&cert.server), USER_KEY)?;
    let output = deliver("pushover", USER_KEY, &settings(port, &other.ca_file()))?;
    assert_eq!(output.status.code(), Some(1));
    assert_one_clean_line(&output);
    assert!(
        stderr(&output).contains("certificate"),
        "{}",
        stderr(&output)
    );
    assert!(
        join(handle).is_err(),
        "the server must not have read a request"
    );
    Ok(())
}

#[test]
fn a_malformed_user_key_or_plain_http_elsewhere_is_a_settings_error() -> TestResult {
    let cert = TestCert::new()?;
    let output = deliver("pushover", "not-a-key", &settings(9, &cert.ca_file()))?;
    assert_eq!(output.status.code(), Some(2));
    assert_one_clean_line(&output);
    let remote =
        format!("api_url = \"http://api.pushover.net/1/messages.json\"\ntoken = \"{TOKEN}\"\n");
    let output = deliver("pushover", USER_KEY, &remote)?;
    assert_eq!(output.status.code(), Some(2));
    assert_one_clean_line(&output);
    Ok(())
}
