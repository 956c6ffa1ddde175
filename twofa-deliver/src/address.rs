//! Checks of everything that ends up in an SMTP command, a header or a URL: addresses, Pushover
//! keys, host names.

use std::net::IpAddr;

use crate::error::Failure;

/// Most recipients one code is mailed to.
const MAX_RECIPIENTS: usize = 10;

/// A plausible mailbox `local@domain` (RFC 5321 sizes, dot-atom local part, LDH domain). Quoted
/// local parts, address literals and non-ASCII (SMTPUTF8) are refused: none belongs in an
/// admin-set destination, and each is a way to smuggle syntax into `RCPT TO:<...>`.
pub(crate) fn is_plausible_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    const LOCAL_SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~.";
    let local_ok = (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || LOCAL_SPECIALS.contains(&b))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    local_ok && address.len() <= 254 && is_domain(domain)
}

/// A host name of letters, digits and hyphens in dot-separated labels.
pub(crate) fn is_domain(domain: &str) -> bool {
    (1..=253).contains(&domain.len())
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `TWOFA_SENDTO` for email: one address or a comma-separated list (spaces around commas are
/// tolerated), at most ten.
pub(crate) fn parse_recipients(sendto: &str) -> Result<Vec<String>, Failure> {
    let recipients: Vec<String> = sendto
        .split(',')
        .map(|s| s.trim_matches(' ').to_string())
        .collect();
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Failure::settings(format!(
            "TWOFA_SENDTO lists more than {MAX_RECIPIENTS} addresses"
        )));
    }
    for recipient in &recipients {
        if !is_plausible_address(recipient) {
            return Err(Failure::settings(format!(
                "TWOFA_SENDTO: `{}` is not a plausible email address",
                recipient.escape_default()
            )));
        }
    }
    Ok(recipients)
}

/// A Pushover user, group or application key: 30 letters and digits.
pub(crate) fn is_pushover_key(key: &str) -> bool {
    key.len() == 30 && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A host to connect to: a domain name or an IP address (IPv6 with or without brackets).
pub(crate) fn parse_host(host: &str) -> Option<Host> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    (bare == host && is_domain(host)).then(|| Host::Name(host.to_ascii_lowercase()))
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// 127.0.0.0/8, ::1 or `localhost`: the only hosts spoken to without TLS.
    pub(crate) fn is_loopback(&self) -> bool {
        match self {
            Host::Ip(ip) => ip.is_loopback(),
            Host::Name(name) => name == "localhost",
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_plausible() {
        for good in [
            "alice@example.com",
            "a.b+tag@sub.example.co.uk",
            "root@localhost",
            "x_y-z@e-x.org",
        ] {
            assert!(is_plausible_address(good), "{good}");
        }
    }

    #[test]
    fn addresses_that_could_inject_syntax_are_refused() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example.com>",
            "<alice@example.com",
            "alice @example.com",
            "alice@exa mple.com",
            "alice@example.com\r\nRCPT TO:<x@y>",
            "\"a b\"@example.com",
            "alice@[127.0.0.1]",
            ".alice@example.com",
            "al..ice@example.com",
            "alice@-example.com",
            "alice@example..com",
            "alicé@example.com",
            "a:b@example.com",
        ] {
            assert!(!is_plausible_address(bad), "{bad:?}");
        }
        assert!(!is_plausible_address(&format!(
            "{}@example.com",
            "a".repeat(65)
        )));
    }

    #[test]
    fn recipient_lists_are_split_on_commas() -> Result<(), Failure> {
        assert_eq!(
            parse_recipients("a@example.com, b@example.com")?,
            vec!["a@example.com".to_string(), "b@example.com".to_string()]
        );
        assert!(parse_recipients("a@example.com,,b@example.com").is_err());
        assert!(parse_recipients("a@example.com b@example.com").is_err());
        assert!(parse_recipients(&["a@example.com"; 11].join(",")).is_err());
        Ok(())
    }

    #[test]
    fn pushover_keys_are_thirty_letters_and_digits() {
        assert!(is_pushover_key("uQiRzpo4DXghDmr9QzzfQu27cmVRsG"));
        assert!(!is_pushover_key("uQiRzpo4DXghDmr9QzzfQu27cmVRs"));
        assert!(!is_pushover_key("uQiRzpo4DXghDmr9QzzfQu27cmVRs!"));
        assert!(!is_pushover_key("uQiRzpo4DXghDmr9QzzfQu27cmVRsGx"));
    }

    #[test]
    fn only_loopback_hosts_count_as_local() {
        let local = [
            "127.0.0.1",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
            "127.1.2.3",
        ];
        for host in local {
            assert_eq!(
                parse_host(host).map(|h| h.is_loopback()),
                Some(true),
                "{host}"
            );
        }
        for host in [
            "10.0.0.1",
            "mail.example.com",
            "localhost.example.com",
            "::2",
        ] {
            assert_eq!(
                parse_host(host).map(|h| h.is_loopback()),
                Some(false),
                "{host}"
            );
        }
        for bad in [
            "",
            "a b",
            "mail.example.com:25",
            "[mail.example.com]",
            "x/y",
        ] {
            assert_eq!(parse_host(bad), None, "{bad}");
        }
    }
}
