//! How the data thread sleeps: `epoll` ([`Poller`]), woken straight by the kernel when a packet
//! arrives, with no event loop between it and the read.
//!
//! - Before sleeping it may busy-poll for a moment ([`Poller::wait`]'s `spin`): on a virtual
//!   machine a wake-up costs more than a ping's work, and an answer often comes within tens
//!   of microseconds.
//! - The spin yields the CPU at every turn, so anything else that wants it runs at once.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

fn entry(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
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

/// An epoll set the data path waits on: what a wake-up costs does not grow with the number of
/// descriptors in it (one per connected socket), as it would with `poll`, which looks at every
/// descriptor again on each wake-up and hooks and unhooks itself on each one per sleep.
/// Level-triggered, as `poll` is: what is left unread is reported again.
pub(crate) struct Poller {
    epoll: std::os::fd::OwnedFd,
    /// How many descriptors are in the set: the most one wait can report.
    registered: usize,
    /// Where a wait's events land, grown to `registered` (at least one) before each.
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: no pointers; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just made and owned by nothing else.
        let epoll = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Self {
            epoll,
            registered: 0,
            events: Vec::with_capacity(16),
        })
    }

    /// Waits for `fd` to be readable (or to report an error or hang-up), reported as `token`.
    pub(crate) fn add(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        self.control(libc::EPOLL_CTL_ADD, fd, &mut event)?;
        self.registered += 1;
        Ok(())
    }

    /// No longer waits for `fd`.
    pub(crate) fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        self.control(libc::EPOLL_CTL_DEL, fd, &mut event)?;
        self.registered = self.registered.saturating_sub(1);
        Ok(())
    }

    fn control(&self, op: libc::c_int, fd: RawFd, event: &mut libc::epoll_event) -> io::Result<()> {
        // SAFETY: a valid epoll descriptor and a pointer to a live event.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Blocks until something is ready or has an error or hang-up pending; returns (token,
    /// events) of what is. For the first `spin` it does not sleep but looks again and again,
    /// yielding the CPU in between.
    pub(crate) fn wait(
        &mut self,
        spin: Duration,
    ) -> io::Result<impl Iterator<Item = (u64, u32)> + '_> {
        let mut n = 0;
        if !spin.is_zero() {
            let start = Instant::now();
            loop {
                n = self.wait_for(0)?;
                if n > 0 || start.elapsed() >= spin {
                    break;
                }
                // SAFETY: no arguments; it cannot fail on Linux.
                unsafe { libc::sched_yield() };
            }
        }
        if n == 0 {
            n = self.wait_for(-1)?;
        }
        Ok(self.events[..n].iter().map(|e| (e.u64, e.events)))
    }

    fn wait_for(&mut self, ms: i32) -> io::Result<usize> {
        let max = self.registered.max(1);
        if self.events.len() < max {
            self.events
                .resize(max, libc::epoll_event { events: 0, u64: 0 });
        }
        loop {
            // SAFETY: a valid epoll descriptor and room for `max` events.
            let rc = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    max as i32,
                    ms,
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
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
        let mut poller = Poller::new()?;
        poller.add(rx.as_raw_fd(), 7)?;
        let (start, cpu) = (Instant::now(), thread_cpu());
        let ready: Vec<_> = poller.wait(spin)?.collect();
        let took = (start.elapsed(), thread_cpu() - cpu);
        assert_eq!(ready, [(7, libc::EPOLLIN as u32)]);
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
        let gone = UdpSocket::bind("127.0.0.1:0")?;
        let mut poller = Poller::new()?;
        poller.add(idle.as_raw_fd(), 0)?;
        poller.add(gone.as_raw_fd(), 1)?;
        poller.add(rx.as_raw_fd(), 2)?;
        poller.delete(gone.as_raw_fd())?;
        gone.send_to(b"y", gone.local_addr()?)?;
        let start = Instant::now();
        let ready: Vec<_> = poller.wait(Duration::ZERO)?.collect();
        assert!(start.elapsed() >= Duration::from_millis(90));
        assert_eq!(
            ready,
            [(2, libc::EPOLLIN as u32)],
            "deleted or idle reported"
        );
        // Level-triggered: unread, it is reported again.
        let again: Vec<_> = poller.wait(Duration::ZERO)?.collect();
        assert_eq!(again, [(2, libc::EPOLLIN as u32)]);
        assert!(matches!(sender.join(), Ok(Ok(1))));
        assert!(writable(&rx, Duration::from_secs(5))?);
        Ok(())
    }

    #[test]
    fn every_ready_descriptor_is_reported_however_many_there_are() -> io::Result<()> {
        // More than the buffer starts with, all ready at once: one wait reports them all;
        // once most are deleted, only the rest.
        let sockets = (0..40)
            .map(|_| UdpSocket::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        let mut poller = Poller::new()?;
        for (token, socket) in (0u64..).zip(&sockets) {
            poller.add(socket.as_raw_fd(), token)?;
            socket.send_to(b"x", socket.local_addr()?)?;
        }
        let mut ready: Vec<u64> = poller.wait(Duration::ZERO)?.map(|(t, _)| t).collect();
        ready.sort_unstable();
        assert_eq!(ready, (0..40).collect::<Vec<_>>());
        for socket in &sockets[1..] {
            poller.delete(socket.as_raw_fd())?;
        }
        let ready: Vec<u64> = poller.wait(Duration::ZERO)?.map(|(t, _)| t).collect();
        assert_eq!(ready, [0]);
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
    fn a_closed_descriptor_is_refused_not_waited_for() -> io::Result<()> {
        let mut poller = Poller::new()?;
        let refused = poller.add(i32::MAX, 0).err().and_then(|e| e.raw_os_error());
        assert_eq!(refused, Some(libc::EBADF));
        Ok(())
    }
}
