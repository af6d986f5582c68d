//! Waiting for non-blocking descriptors, the way the data path's thread sleeps: `poll(2)`. A
//! thread blocked here is woken straight by the kernel when a packet arrives, with no event
//! loop between it and the read that follows.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A `poll` entry waiting for `fd` to be readable; a negative `fd` is skipped by `poll`.
pub(crate) fn readable(fd: RawFd) -> libc::pollfd {
    entry(fd, libc::POLLIN)
}

fn entry(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Blocks until one of `fds` is ready or has an error or hang-up pending; `revents` says
/// which.
pub(crate) fn poll(fds: &mut [libc::pollfd]) -> io::Result<()> {
    poll_for(fds, -1).map(|_| ())
}

/// `poll` for at most `ms` milliseconds (-1: no limit); returns how many are ready.
fn poll_for(fds: &mut [libc::pollfd], ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: a valid array of pollfds, and its length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc >= 0 {
            if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Blocks until `fd` is writable or `limit` has passed; returns whether it is writable.
pub(crate) fn writable(fd: &impl AsRawFd, limit: Duration) -> io::Result<bool> {
    let mut fds = [entry(fd.as_raw_fd(), libc::POLLOUT)];
    let ms = limit.as_millis().min(i32::MAX as u128) as i32;
    Ok(poll_for(&mut fds, ms)? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Instant;

    #[test]
    fn returns_once_a_datagram_is_there_and_says_where() -> io::Result<()> {
        let idle = UdpSocket::bind("127.0.0.1:0")?;
        let rx = UdpSocket::bind("127.0.0.1:0")?;
        let to = rx.local_addr()?;
        let sender = std::thread::spawn(move || -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(100));
            UdpSocket::bind("127.0.0.1:0")?.send_to(b"x", to)
        });
        let mut fds = [
            readable(idle.as_raw_fd()),
            readable(-1),
            readable(rx.as_raw_fd()),
        ];
        let start = Instant::now();
        poll(&mut fds)?;
        assert!(start.elapsed() >= Duration::from_millis(90));
        assert_eq!(fds.map(|p| p.revents), [0, 0, libc::POLLIN]);
        assert!(matches!(sender.join(), Ok(Ok(1))));
        assert!(writable(&rx, Duration::from_secs(5))?);
        Ok(())
    }

    #[test]
    fn a_full_socket_is_waited_for_only_until_the_limit() -> io::Result<()> {
        let (full, _peer) = std::os::unix::net::UnixDatagram::pair()?;
        full.set_nonblocking(true)?;
        while full.send(&[0u8; 1024]).is_ok() {}
        let start = Instant::now();
        assert!(!writable(&full, Duration::from_millis(50))?);
        assert!(start.elapsed() >= Duration::from_millis(40));
        Ok(())
    }

    #[test]
    fn a_closed_descriptor_is_an_error_not_a_spin() {
        let mut fds = [readable(i32::MAX)];
        assert_eq!(
            poll(&mut fds).err().and_then(|e| e.raw_os_error()),
            Some(libc::EBADF)
        );
    }
}
