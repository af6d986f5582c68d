//! Waiting for non-blocking descriptors, the way the data path's thread sleeps: `poll(2)`. A
//! thread blocked here is woken straight by the kernel when a packet arrives, with no event
//! loop between it and the read that follows.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A `poll` entry waiting for `fd` to be readable; a negative `fd` is skipped by `poll`.
pub(crate) fn readable(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Blocks until one of `fds` is ready (or has an error or hang-up pending, which the next
/// read or write then reports); `revents` says which.
pub(crate) fn poll(fds: &mut [libc::pollfd]) -> io::Result<()> {
    loop {
        // SAFETY: a valid array of pollfds, and its length.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc >= 0 {
            if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Blocks until `fd` is writable.
pub(crate) fn writable(fd: &impl AsRawFd) -> io::Result<()> {
    let mut fds = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    }];
    poll(&mut fds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

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
        writable(&rx)
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
