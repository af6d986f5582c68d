//! A classic BPF filter on meshd's UDP sockets: the kernel drops what cannot be a WireGuard
//! message before it is queued to the socket, so garbage costs meshd no copy and no wake-up.
//!
//! - Kept: type 1, 2 or 3 (three zero bytes after the type) whose length is a multiple of
//!   148, 92 or 64 bytes (several when the kernel coalesced a train, UDP GRO); type 4 of 32
//!   bytes or more.
//! - Dropped: everything else, counted by the kernel as `UdpInErrors` (`nstat -az UdpInErrors`).
//! - `MESHD_SOCKET_FILTER=off` leaves the sockets unfiltered (for comparing).

use std::io;
use std::os::fd::AsRawFd;

/// What a UDP socket filter sees first: the UDP header.
const UDP_HEADER: u32 = 8;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_W_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const SUB: u16 = (libc::BPF_ALU | libc::BPF_SUB | libc::BPF_K) as u16;
const MOD: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The message type as the first 32-bit word reads big-endian: the type, then three zeros.
const fn word(message_type: u32) -> u32 {
    message_type << 24
}

/// The program; jump offsets count from the next instruction. `DROP` is 20, `KEEP` 21.
const PROGRAM: [libc::sock_filter; 22] = [
    op(LD_W_ABS, 0, 0, UDP_HEADER), //  0: A = first word of the payload
    op(JEQ, 4, 0, word(4)),         //  1: data -> 6
    op(JEQ, 5, 0, word(1)),         //  2: initiation -> 8
    op(JEQ, 8, 0, word(2)),         //  3: response -> 12
    op(JEQ, 11, 0, word(3)),        //  4: cookie reply -> 16
    op(RET, 0, 0, 0),               //  5: anything else
    op(LD_W_LEN, 0, 0, 0),          //  6: data: A = length
    op(JGE, 13, 12, UDP_HEADER + 32),
    op(LD_W_LEN, 0, 0, 0), //  8: initiation
    op(SUB, 0, 0, UDP_HEADER),
    op(MOD, 0, 0, 148),
    op(JEQ, 9, 8, 0),
    op(LD_W_LEN, 0, 0, 0), // 12: response
    op(SUB, 0, 0, UDP_HEADER),
    op(MOD, 0, 0, 92),
    op(JEQ, 5, 4, 0),
    op(LD_W_LEN, 0, 0, 0), // 16: cookie reply
    op(SUB, 0, 0, UDP_HEADER),
    op(MOD, 0, 0, 64),
    op(JEQ, 1, 0, 0),
    op(RET, 0, 0, 0),        // 20: DROP
    op(RET, 0, 0, u32::MAX), // 21: KEEP, whole
];

/// Attaches the filter to `socket`, unless `MESHD_SOCKET_FILTER=off`.
pub(crate) fn attach(socket: &impl AsRawFd) -> io::Result<()> {
    if std::env::var("MESHD_SOCKET_FILTER").is_ok_and(|v| v == "off") {
        return Ok(());
    }
    let program = libc::sock_fprog {
        len: PROGRAM.len() as u16,
        filter: PROGRAM.as_ptr().cast_mut(),
    };
    // SAFETY: a valid fd, and a pointer/length pair to a live sock_fprog whose program the
    // kernel copies before returning.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn message(message_type: u8, len: usize) -> Vec<u8> {
        let mut m = vec![0xa5u8; len];
        if len >= 4 {
            m[..4].copy_from_slice(&[message_type, 0, 0, 0]);
        } else if len > 0 {
            m[0] = message_type;
        }
        m
    }

    #[test]
    fn the_kernel_keeps_what_can_be_wireguard_and_drops_the_rest() -> io::Result<()> {
        let receiver = UdpSocket::bind("127.0.0.1:0")?;
        attach(&receiver)?;
        receiver.set_read_timeout(Some(Duration::from_millis(200)))?;
        let sender = UdpSocket::bind("127.0.0.1:0")?;
        let keep = [
            message(1, 148),
            message(2, 92),
            message(3, 64),
            message(4, 32),
            message(4, 1452),
        ];
        let mut drop = vec![
            message(1, 147),
            message(1, 149),
            message(2, 148),
            message(3, 92),
            message(4, 31),
            message(5, 148),
            message(0, 64),
            message(4, 2),
            Vec::new(),
        ];
        let mut reserved = message(1, 148);
        reserved[2] = 1; // not three zero bytes after the type
        drop.push(reserved);
        // Every dropped one first, then the kept ones: what arrives must be exactly those.
        for m in drop.iter().chain(&keep) {
            sender.send_to(m, receiver.local_addr()?)?;
        }
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        while let Ok(n) = receiver.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, keep);
        Ok(())
    }
}
