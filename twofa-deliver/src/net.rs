//! Where to connect, and one deadline for the whole delivery.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::address::Host;
use crate::error::Failure;

/// The addresses of `host`. With `loopback_only` (the setting relied on the host being local,
/// for plaintext), addresses that are not loopback are dropped, whatever /etc/hosts says
/// `localhost` is; none left is an error.
pub(crate) fn addresses(
    host: &Host,
    port: u16,
    loopback_only: bool,
) -> Result<Vec<SocketAddr>, Failure> {
    let addrs: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => (name.as_str(), port)
            .to_socket_addrs()
            .map_err(|err| Failure::delivery(format!("cannot resolve {host}: {err}")))?
            .collect(),
    };
    let addrs: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|addr| !loopback_only || addr.ip().is_loopback())
        .collect();
    if addrs.is_empty() {
        return Err(Failure::delivery(format!("{host} has no usable address")));
    }
    Ok(addrs)
}

/// The budget for the whole delivery (connect, TLS, every read and write), enforced from
/// outside the clients: lettre's timeout applies to each read and write on its own, so a relay
/// that answers slowly, one line at a time, could keep it going for many budgets. When the
/// budget is spent this thread prints the one failure line and ends the process with status 1
/// (not sent). pam_twofa's runner still SIGKILLs at its own, slightly longer, deadline.
pub(crate) fn arm_deadline(budget: Duration, peer: String) {
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!(
            "twofa-deliver: timed out after {} s talking to {peer}",
            budget.as_secs()
        );
        std::process::exit(Failure::delivery("").exit_code());
    });
}

/// This machine's name, for `{host}`, the default HELO and the Message-ID; `localhost` if it
/// has none that can go into a header.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| crate::address::is_domain(name))
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn loopback_only_keeps_loopback_addresses() -> Result<(), Failure> {
        let local = Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(addresses(&local, 25, true)?.len(), 1);
        let remote = Host::Ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(addresses(&remote, 25, true).is_err());
        assert_eq!(addresses(&remote, 25, false)?.len(), 1);
        Ok(())
    }

    #[test]
    fn the_hostname_is_usable_in_a_header() {
        assert!(crate::address::is_domain(&hostname()));
    }
}
