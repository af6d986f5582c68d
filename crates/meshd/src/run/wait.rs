//! Waiting for non-blocking descriptors, the way the data path's thread sleeps: `poll(2)`. A
//! thread blocked here is woken straight by the kernel when a packet arrives, with no event
//! loop between it and the read that follows.
//!
//! Before it sleeps, the data path may busy-poll for a moment ([`poll`]'s `spin`): on a
//! virtual machine a wake-up costs more than the work a ping or a small request takes (the
//! idle vCPU has halted, and the host must wake it), and an answer often comes within tens of
//! microseconds of a packet going out. The spin yields the CPU at every turn, so anything else
//! that wants the CPU runs at once, as if the thread were asleep.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

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
/// which. For the first `spin` it does not sleep but looks again and again, yielding the CPU
/// in between.
pub(crate) fn poll(fds: &mut [libc::pollfd], spin: Duration) -> io::Result<()> {
    if !spin.is_zero() {
        let start = Instant::now();
        loop {
            if poll_for(fds, 0)? > 0 {
                return Ok(());
            }
            if start.elapsed() >= spin {
                break;
            }
            // SAFETY: no arguments; it cannot fail on Linux.
            unsafe { libc::sched_yield() };
        }
    }
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

    /// CPU time this thread has used.
    fn thread_cpu() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a pointer to a live timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }

    /// Waits on a socket that a datagram reaches after `after`, spinning for `spin` first;
    /// returns the wall time and this thread's CPU time the wait took.
    fn wait_with(spin: Duration, after: Duration) -> io::Result<(Duration, Duration)> {
        let rx = UdpSocket::bind("127.0.0.1:0")?;
        let to = rx.local_addr()?;
        let sender = std::thread::spawn(move || -> io::Result<usize> {
            std::thread::sleep(after);
            UdpSocket::bind("127.0.0.1:0")?.send_to(b"x", to)
        });
        let mut fds = [readable(rx.as_raw_fd())];
        let (start, cpu) = (Instant::now(), thread_cpu());
        poll(&mut fds, spin)?;
        let took = (start.elapsed(), thread_cpu() - cpu);
        assert_eq!(fds[0].revents, libc::POLLIN);
        assert!(matches!(sender.join(), Ok(Ok(1))));
        Ok(took)
    }

    #[test]
    fn a_spin_looks_on_the_cpu_then_sleeps() -> io::Result<()> {
        // The datagram comes after the spin: the thread was on the CPU for the spin (less
        // whatever others took from it at its yields), then asleep until it came.
        let (wall, cpu) = wait_with(Duration::from_millis(40), Duration::from_millis(150))?;
        assert!(wall >= Duration::from_millis(140), "{wall:?}");
        assert!(cpu >= Duration::from_millis(2), "spun for only {cpu:?}");
        assert!(cpu < Duration::from_millis(120), "did not sleep: {cpu:?}");
        // Without a spin it sleeps at once.
        let (_, cpu) = wait_with(Duration::ZERO, Duration::from_millis(100))?;
        assert!(cpu < Duration::from_millis(5), "{cpu:?}");
        Ok(())
    }

    #[test]
    fn a_spin_ends_as_soon_as_something_is_ready() -> io::Result<()> {
        let (wall, _) = wait_with(Duration::from_secs(5), Duration::from_millis(50))?;
        assert!(wall < Duration::from_secs(4), "{wall:?}");
        Ok(())
    }

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
        poll(&mut fds, Duration::ZERO)?;
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
            poll(&mut fds, Duration::ZERO)
                .err()
                .and_then(|e| e.raw_os_error()),
            Some(libc::EBADF)
        );
    }
}
