//! The Pushover method: one POST to the Messages API
//! (<https://pushover.net/api>: form fields `token`, `user`, `message`, `title`, `ttl`;
//! HTTP 200 with `"status":1` is success, 4xx with `"status":0` and `errors` is a refusal).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde_json::Value;
use toml_edit::DocumentMut;

use crate::address;
use crate::error::Failure;
use crate::http::{self, Response, Url};
use crate::mail::absolute;
use crate::net;
use crate::request::Invocation;
use crate::settings::Settings;
use crate::template::{self, Vars};
use crate::tls;

const KNOWN: &[&str] = &[
    "api_url",
    "token",
    "ca_file",
    "title",
    "message",
    "timeout_seconds",
];

const DEFAULT_URL: &str = "https://api.pushover.net/1/messages.json";
const DEFAULT_TITLE: &str = "Login code";
const DEFAULT_MESSAGE: &str =
    "Your login code for {user} on {host} is {code}. It is valid for {ttl_minutes} minutes.";
/// The API's limits, in characters.
const MAX_TITLE: usize = 250;
const MAX_MESSAGE: usize = 1024;

/// Everything the Pushover method needs besides the invocation.
#[derive(Debug)]
pub(crate) struct PushoverSettings {
    url: Url,
    roots: Option<Arc<Vec<CertificateDer<'static>>>>,
    token: String,
    title: String,
    message: String,
    timeout: Duration,
}

impl PushoverSettings {
    /// Reads and checks the settings; adds the token to `secrets` before anything could
    /// mention it.
    pub(crate) fn from_document(
        document: &DocumentMut,
        secrets: &mut Vec<String>,
    ) -> Result<Self, Failure> {
        let settings = Settings::new(document, "pushover", KNOWN)?;
        let token = settings.required_string("token")?;
        secrets.push(token.clone());
        let ca_file = settings.string("ca_file")?;
        let url_text = settings
            .string("api_url")?
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        let url = Url::parse(&url_text).ok_or_else(|| {
            Failure::settings(format!(
                "pushover setting `api_url`: `{}` is not an http(s) URL",
                url_text.escape_default()
            ))
        })?;
        if !url.https && !url.host.is_loopback() {
            return Err(Failure::settings(
                "pushover setting `api_url` must be https (http only for 127.0.0.1, ::1, localhost)",
            ));
        }
        let roots = match (url.https, &ca_file) {
            (false, Some(_)) => {
                return Err(Failure::settings(
                    "pushover setting `ca_file` makes no sense with an http:// api_url",
                ))
            }
            (false, None) => None,
            (true, ca_file) => Some(tls::load_roots(absolute(ca_file.as_deref())?)?),
        };
        if !address::is_pushover_key(&token) {
            return Err(Failure::settings(
                "pushover setting `token` must be 30 letters and digits",
            ));
        }
        Ok(PushoverSettings {
            url,
            roots,
            token,
            title: settings
                .string("title")?
                .unwrap_or_else(|| DEFAULT_TITLE.to_string()),
            message: settings
                .string("message")?
                .unwrap_or_else(|| DEFAULT_MESSAGE.to_string()),
            timeout: settings.timeout()?,
        })
    }
}

/// Sends the code to the Pushover user key in `TWOFA_SENDTO`.
pub(crate) fn send(settings: &PushoverSettings, invocation: &Invocation) -> Result<(), Failure> {
    if !address::is_pushover_key(&invocation.sendto) {
        return Err(Failure::settings(
            "TWOFA_SENDTO must be a Pushover user key (30 letters and digits)",
        ));
    }
    let host = net::hostname();
    let vars = Vars::new(invocation, &host);
    let title = template::render_line(&settings.title, &vars, "title", MAX_TITLE)?;
    let message = template::render_text(&settings.message, &vars, "message", MAX_MESSAGE)?;
    let ttl = invocation.ttl_seconds.to_string();
    let mut fields = vec![
        ("token", settings.token.as_str()),
        ("user", invocation.sendto.as_str()),
        ("message", message.as_str()),
        // The notification is deleted from the device once the code has expired.
        ("ttl", ttl.as_str()),
    ];
    if !title.is_empty() {
        fields.push(("title", title.as_str()));
    }
    let response = http::post_form(
        &settings.url,
        settings.roots.as_ref(),
        &fields,
        settings.timeout,
    )?;
    interpret(&response)
}

/// Success is HTTP 200 with `"status":1`; anything else is a failure that quotes the API's
/// `errors` (which name the bad field, never echo the token).
pub(crate) fn interpret(response: &Response) -> Result<(), Failure> {
    let json: Option<Value> = serde_json::from_slice(&response.body).ok();
    let status_one = json
        .as_ref()
        .and_then(|j| j.get("status"))
        .and_then(Value::as_i64)
        == Some(1);
    if response.status == 200 && status_one {
        return Ok(());
    }
    let errors: Vec<String> = json
        .as_ref()
        .and_then(|j| j.get("errors"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .take(5)
                .collect()
        })
        .unwrap_or_default();
    let why = match (response.status, errors.is_empty()) {
        (429, _) => "the application is over its message limit".to_string(),
        (_, false) => errors.join("; "),
        (200, true) => "the answer is not {\"status\":1}".to_string(),
        (500..=599, true) => "server error, try again later".to_string(),
        (_, true) => "no error text".to_string(),
    };
    Err(Failure::delivery(format!(
        "Pushover refused the message (HTTP {}): {why}",
        response.status
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn only_status_one_with_200_is_success() {
        assert!(interpret(&response(200, r#"{"status":1,"request":"abc"}"#)).is_ok());
        assert!(interpret(&response(200, r#"{"status":0,"request":"abc"}"#)).is_err());
        assert!(interpret(&response(200, "<html>ok</html>")).is_err());
        assert!(interpret(&response(201, r#"{"status":1}"#)).is_err());
    }

    #[test]
    fn refusals_quote_the_api_errors() {
        let err = interpret(&response(
            400,
            r#"{"user":"invalid","errors":["user identifier is invalid"],"status":0,"request":"5042853c"}"#,
        ));
        let line = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            line,
            "Pushover refused the message (HTTP 400): user identifier is invalid"
        );
        let line = interpret(&response(503, "Service Unavailable"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(line.contains("HTTP 503"), "{line}");
    }

    #[test]
    fn a_bad_token_is_refused_without_being_echoed() -> Result<(), Failure> {
        let doc = crate::settings::parse("token = \"short-secret-token\"\n")?;
        let mut secrets = Vec::new();
        let line = PushoverSettings::from_document(&doc, &mut secrets)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            line.contains("token") && !line.contains("short-secret-token"),
            "{line}"
        );
        assert_eq!(secrets, vec!["short-secret-token".to_string()]);
        Ok(())
    }

    #[test]
    fn plain_http_is_for_loopback_only() -> Result<(), Failure> {
        let token = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
        let doc = crate::settings::parse(&format!(
            "token = \"{token}\"\napi_url = \"http://api.pushover.net/1/messages.json\"\n"
        ))?;
        assert!(PushoverSettings::from_document(&doc, &mut Vec::new()).is_err());
        let doc = crate::settings::parse(&format!(
            "token = \"{token}\"\napi_url = \"http://127.0.0.1:9/1/messages.json\"\n"
        ))?;
        assert!(PushoverSettings::from_document(&doc, &mut Vec::new()).is_ok());
        Ok(())
    }
}
