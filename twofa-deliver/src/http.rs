//! One HTTP/1.1 POST over TLS (or plain HTTP to loopback), written by hand: a request line,
//! four headers and a response parser are smaller to audit than an HTTP client library.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::RootCertStore;

use crate::address::{self, Host};
use crate::error::Failure;
use crate::net::{self, Deadline};
use crate::tls;

/// Largest response accepted (the Pushover API answers a few hundred bytes).
const MAX_RESPONSE: usize = 64 * 1024;

/// An `http://` or `https://` URL, parsed far enough to connect and send the request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) https: bool,
    pub(crate) host: Host,
    pub(crate) port: u16,
    /// Path and query, starting with `/`.
    pub(crate) path: String,
}

impl Url {
    pub(crate) fn parse(text: &str) -> Option<Url> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else {
            (false, text.strip_prefix("http://")?)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if !path.bytes().all(|b| b.is_ascii_graphic()) || path.contains('#') {
            return None;
        }
        let default_port = if https { 443 } else { 80 };
        // `[v6]:port`, `host:port`, or either without a port; never `user@`.
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port))
                if !port.contains(']') && (host.starts_with('[') || !host.contains(':')) =>
            {
                (host, port.parse::<u16>().ok().filter(|p| *p != 0)?)
            }
            _ => (authority, default_port),
        };
        Some(Url {
            https,
            host: address::parse_host(host)?,
            port,
            path: path.to_string(),
        })
    }

    fn host_header(&self) -> String {
        let default_port = if self.https { 443 } else { 80 };
        if self.port == default_port {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Status and body of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// The request bytes of a form POST.
pub(crate) fn form_request(url: &Url, form: &str) -> String {
    format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: twofa-deliver/{}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n{form}",
        url.path,
        url.host_header(),
        env!("CARGO_PKG_VERSION"),
        form.len()
    )
}

/// POSTs `form` (already urlencoded) and reads the response, all before `deadline`. `roots` is
/// `None` only for plain HTTP (which the caller allows for loopback only).
pub(crate) fn post_form(
    url: &Url,
    roots: Option<&Arc<RootCertStore>>,
    form: &str,
    deadline: Deadline,
) -> Result<Response, Failure> {
    let sock = net::connect(&url.host, url.port, deadline, !url.https)?;
    let request = form_request(url, form);
    let host = &url.host;
    match (url.https, roots) {
        (true, Some(roots)) => {
            let config = tls::client_config(Arc::clone(roots))?;
            let mut stream = tls::handshake(&config, host, sock)?;
            exchange(&mut stream, &request, host)
        }
        (false, _) => {
            let mut sock = sock;
            exchange(&mut sock, &request, host)
        }
        (true, None) => Err(Failure::delivery("https without trusted certificates")),
    }
}

fn exchange(stream: &mut impl ReadWrite, request: &str, host: &Host) -> Result<Response, Failure> {
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|err| Failure::delivery(format!("sending the request to {host} failed: {err}")))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let eof = match stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => false,
            // A server that closes without TLS close_notify: the framing below still decides
            // whether the response is complete.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => true,
            Err(err) => {
                return Err(Failure::delivery(format!(
                    "reading the response from {host} failed: {err}"
                )))
            }
        };
        if buf.len() > MAX_RESPONSE {
            return Err(Failure::delivery(format!(
                "the response from {host} is too large"
            )));
        }
        match parse_response(&buf, eof) {
            Ok(Some(response)) => return Ok(response),
            Ok(None) if eof => {
                return Err(Failure::delivery(format!(
                    "{host} closed the connection before a complete response"
                )))
            }
            Ok(None) => {}
            Err(why) => return Err(Failure::delivery(format!("{why} from {host}"))),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Parses a complete response from `buf`; `Ok(None)` if more bytes are needed. `eof`: the
/// connection is closed, so a body without length ends here.
pub(crate) fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let mut buf = buf;
    loop {
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            return Ok(None);
        };
        let head = std::str::from_utf8(&buf[..head_end])
            .map_err(|_| "malformed HTTP response head".to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status = parts
            .next()
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..600).contains(s));
        let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
            return Err("malformed HTTP status line".to_string());
        };
        let rest = &buf[head_end + 4..];
        if (100..200).contains(&status) {
            // An interim response (100 Continue): the real one follows.
            buf = rest;
            continue;
        }
        let mut content_length = None;
        let mut chunked = false;
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| "malformed HTTP header".to_string())?;
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| "malformed Content-Length".to_string())?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        let body = if chunked {
            match dechunk(rest)? {
                Some(body) => body,
                None => return Ok(None),
            }
        } else if let Some(length) = content_length {
            match rest.get(..length) {
                Some(body) => body.to_vec(),
                None => return Ok(None),
            }
        } else if eof {
            rest.to_vec()
        } else {
            return Ok(None);
        };
        return Ok(Some(Response { status, body }));
    }
}

/// Decodes a chunked body; `Ok(None)` until the last (empty) chunk has arrived.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let size_text = std::str::from_utf8(&data[..line_end])
            .map_err(|_| "malformed chunk size".to_string())?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .ok()
            .filter(|s| *s <= MAX_RESPONSE)
            .ok_or_else(|| "malformed chunk size".to_string())?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        let Some(chunk) = data.get(..size) else {
            return Ok(None);
        };
        body.extend_from_slice(chunk);
        match data.get(size..size + 2) {
            None => return Ok(None),
            Some(b"\r\n") => data = &data[size + 2..],
            Some(_) => return Err("malformed chunk".to_string()),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv6Addr};

    #[test]
    fn urls_are_split_into_host_port_and_path() {
        let url = Url::parse("https://api.pushover.net/1/messages.json");
        assert_eq!(
            url,
            Some(Url {
                https: true,
                host: Host::Name("api.pushover.net".into()),
                port: 443,
                path: "/1/messages.json".into()
            })
        );
        let url = Url::parse("http://[::1]:8080/x?y=1");
        assert_eq!(
            url.as_ref().map(|u| &u.host),
            Some(&Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
        );
        assert_eq!(url.as_ref().map(|u| u.port), Some(8080));
        assert_eq!(
            Url::parse("https://h.example").map(|u| u.path),
            Some("/".into())
        );
        for bad in [
            "ftp://h/x",
            "https://user@h/x",
            "https://h:0/",
            "https://h:99999/",
            "https://h/a b",
            "https:///x",
            "https://h/x\r\nHost: evil",
        ] {
            assert_eq!(Url::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_request_names_method_path_type_and_length() {
        let url = Url::parse("https://127.0.0.1:8443/1/messages.json");
        let request = url.map(|u| form_request(&u, "a=b")).unwrap_or_default();
        assert!(request.starts_with("POST /1/messages.json HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"));
        assert!(request.contains("Content-Type: application/x-www-form-urlencoded\r\n"));
        assert!(request.ends_with(
            "Content-Length: 3\r\nAccept: application/json\r\nConnection: close\r\n\r\na=b"
        ));
    }

    #[test]
    fn responses_are_framed_by_length_chunks_or_eof() -> Result<(), String> {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
        assert_eq!(parse_response(&full[..full.len() - 1], false)?, None);
        assert_eq!(
            parse_response(full, false)?,
            Some(Response {
                status: 200,
                body: b"body".to_vec()
            })
        );
        let chunked = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(&chunked[..40], false)?, None);
        assert_eq!(
            parse_response(chunked, false)?.map(|r| (r.status, r.body)),
            Some((400, b"abcde".to_vec()))
        );
        let until_eof = b"HTTP/1.0 500 Oops\r\nServer: x\r\n\r\nhello";
        assert_eq!(parse_response(until_eof, false)?, None);
        assert_eq!(
            parse_response(until_eof, true)?.map(|r| r.status),
            Some(500)
        );
        let interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_response(interim, false)?.map(|r| r.status), Some(200));
        Ok(())
    }

    #[test]
    fn malformed_responses_are_errors() {
        for bad in [
            &b"SMTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(
                parse_response(bad, true).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
