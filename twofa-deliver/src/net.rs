//! Where to connect, and TCP with one deadline for the whole delivery: every connect, read and
//! write of the SMTP dialogue gets only the time that is left. (The Pushover POST is kept
//! within its budget by ureq's global timeout.)

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::address::Host;
use crate::error::Failure;

/// The instant by which the delivery must be done.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn after(budget: Duration) -> Self {
        Deadline(Instant::now() + budget)
    }

    /// Time left, or a TimedOut error once there is none.
    pub(crate) fn remaining(&self) -> io::Result<Duration> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
        } else {
            Ok(left)
        }
    }
}

/// A TCP stream whose every read and write times out at the deadline.
#[derive(Debug)]
pub(crate) struct DeadlineStream {
    tcp: TcpStream,
    deadline: Deadline,
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp
            .set_read_timeout(Some(self.deadline.remaining()?))?;
        self.tcp.read(buf).map_err(timed_out)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp
            .set_write_timeout(Some(self.deadline.remaining()?))?;
        self.tcp.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// A socket timeout shows up as WouldBlock on Linux: call it what it is.
fn timed_out(err: io::Error) -> io::Error {
    if err.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "timed out")
    } else {
        err
    }
}

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

/// Connects to the first address of `host` that answers (see `addresses` for `loopback_only`).
pub(crate) fn connect(
    host: &Host,
    port: u16,
    deadline: Deadline,
    loopback_only: bool,
) -> Result<DeadlineStream, Failure> {
    let mut last_error = None;
    for addr in &addresses(host, port, loopback_only)? {
        let left = deadline
            .remaining()
            .map_err(|_| Failure::delivery(format!("timed out connecting to {host}:{port}")))?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(DeadlineStream { tcp, deadline });
            }
            Err(err) => last_error = Some(err),
        }
    }
    let why = last_error.map_or_else(|| "no address".to_string(), |err| err.to_string());
    Err(Failure::delivery(format!(
        "cannot connect to {host}:{port}: {why}"
    )))
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
    use std::net::{IpAddr, Ipv4Addr, TcpListener};

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
    fn a_silent_server_times_out_at_the_deadline() -> Result<(), Box<dyn std::error::Error>> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let host = Host::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let started = Instant::now();
        let mut stream = connect(
            &host,
            port,
            Deadline::after(Duration::from_millis(300)),
            true,
        )?;
        let mut buf = [0u8; 8];
        let err = stream.read(&mut buf).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(3));
        Ok(())
    }

    #[test]
    fn the_hostname_is_usable_in_a_header() {
        assert!(crate::address::is_domain(&hostname()));
    }
}
