//! A classic BPF filter on meshd's UDP sockets: the kernel drops what cannot be a WireGuard
//! message before it is queued to the socket, so garbage costs meshd no copy and no wake-up.
//!
//! - Kept: type 1, 2 or 3 (three zero bytes after the type) whose length is a multiple of
//!   148, 92 or 64 bytes (several when the kernel coalesced a train, UDP GRO); type 4 of 32
//!   bytes or more.
//! - Dropped: everything else, counted by the kernel as `UdpInErrors` (`nstat -az UdpInErrors`).
//! - On the listening sockets, also dropped ([`Refused`]): data naming a session slot far past
//!   the node's highest, and initiations and responses from sources the handshake worker
//!   blocks for flooding (IPv4 addresses, IPv6 /64s; at most [`MAX_BLOCKED`]), checked first.
//! - A train the kernel coalesced (UDP GRO) is judged by its first message: one flow, and
//!   in practice one session.
//! - `MESHD_SOCKET_FILTER=off` leaves the sockets unfiltered (for comparing).

use meshd_core::node::MAX_SESSION_SLOT;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// Sources whose handshake messages the filter drops, at most.
pub(crate) const MAX_BLOCKED: usize = 16;

/// Session slots past the node's highest that data may still name: a peer that has not
/// noticed a restart sends for the sessions of the run before, whose slots reloads may have
/// raised. Random indexes pass (highest + 65,537) times in 2^24: one in 256 with few peers.
pub(crate) const SLOT_HEADROOM: usize = 1 << 16;

/// What a listening socket's filter drops besides what cannot be WireGuard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Sources whose initiations and responses are dropped (the first [`MAX_BLOCKED`]).
    pub(crate) sources: Vec<IpAddr>,
    /// Data naming a session slot above this is dropped; `None`: none is.
    pub(crate) slots_above: Option<usize>,
}

impl Refused {
    /// Refuses data for slots more than [`SLOT_HEADROOM`] past `highest`, the node's highest
    /// slot in use.
    pub(crate) fn set_highest_slot(&mut self, highest: Option<usize>) {
        let bound = highest.unwrap_or(0).saturating_add(SLOT_HEADROOM);
        self.slots_above = Some(bound.min(MAX_SESSION_SLOT));
    }
}

/// What a UDP socket filter sees first: the UDP header.
const UDP_HEADER: u32 = 8;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const LD_W_LEN: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_LEN) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const SUB: u16 = (libc::BPF_ALU | libc::BPF_SUB | libc::BPF_K) as u16;
const MOD: u16 = (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
/// Where the IP header's source address is read from (the kernel's negative offset for the
/// network header).
const SOURCE_V4: u32 = libc::SKF_NET_OFF as u32 + 12;
const SOURCE_V6: u32 = libc::SKF_NET_OFF as u32 + 8;
/// A data message's receiver index is little-endian at payload bytes 4..8: its slot's
/// bytes, highest first, are payload bytes 7, 6, 5.
const SLOT_BYTES: [u32; 3] = [UDP_HEADER + 7, UDP_HEADER + 6, UDP_HEADER + 5];

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The message type as the first 32-bit word reads big-endian: the type, then three zeros.
const fn word(message_type: u32) -> u32 {
    message_type << 24
}

/// The program for data naming slots up to `slots_above` at most; jump offsets count from
/// the next instruction. `DROP` is 28, `KEEP` 29.
const fn by_type(slots_above: u32) -> [libc::sock_filter; 30] {
    // The slot compared byte by byte, highest first: greater drops, smaller keeps.
    let [_, hi, mid, lo] = slots_above.to_be_bytes();
    let (hi, mid, lo) = (hi as u32, mid as u32, lo as u32);
    [
        op(LD_W_ABS, 0, 0, UDP_HEADER), //  0: A = first word of the payload
        op(JEQ, 4, 0, word(4)),         //  1: data -> 6
        op(JEQ, 13, 0, word(1)),        //  2: initiation -> 16
        op(JEQ, 16, 0, word(2)),        //  3: response -> 20
        op(JEQ, 19, 0, word(3)),        //  4: cookie reply -> 24
        op(RET, 0, 0, 0),               //  5: anything else
        op(LD_W_LEN, 0, 0, 0),          //  6: data: A = length
        op(JGE, 0, 20, UDP_HEADER + 32),
        op(LD_B_ABS, 0, 0, SLOT_BYTES[0]), //  8: the slot's high byte
        op(JGT, 18, 0, hi),
        op(JEQ, 0, 18, hi),
        op(LD_B_ABS, 0, 0, SLOT_BYTES[1]), // 11: its middle byte
        op(JGT, 15, 0, mid),
        op(JEQ, 0, 15, mid),
        op(LD_B_ABS, 0, 0, SLOT_BYTES[2]), // 14: its low byte
        op(JGT, 12, 13, lo),
        op(LD_W_LEN, 0, 0, 0), // 16: initiation
        op(SUB, 0, 0, UDP_HEADER),
        op(MOD, 0, 0, 148),
        op(JEQ, 9, 8, 0),
        op(LD_W_LEN, 0, 0, 0), // 20: response
        op(SUB, 0, 0, UDP_HEADER),
        op(MOD, 0, 0, 92),
        op(JEQ, 5, 4, 0),
        op(LD_W_LEN, 0, 0, 0), // 24: cookie reply
        op(SUB, 0, 0, UDP_HEADER),
        op(MOD, 0, 0, 64),
        op(JEQ, 1, 0, 0),
        op(RET, 0, 0, 0),        // 28: DROP
        op(RET, 0, 0, u32::MAX), // 29: KEEP, whole
    ]
}

/// The filter for a socket of one family: handshake messages from the refused sources of
/// that family dropped, then [`by_type`].
fn program(refused: &Refused, v6: bool) -> Vec<libc::sock_filter> {
    // The first 64 bits of each IPv6 source, or each IPv4 address, as words.
    let sources: Vec<(u32, u32)> = refused
        .sources
        .iter()
        .filter_map(|ip| match (ip, v6) {
            (IpAddr::V4(a), false) => Some((u32::from(*a), 0)),
            (IpAddr::V6(a), true) => {
                let bits = u128::from(*a);
                Some(((bits >> 96) as u32, (bits >> 64) as u32))
            }
            _ => None,
        })
        .take(MAX_BLOCKED)
        .collect();
    let mut p = Vec::new();
    if !sources.is_empty() {
        let per = if v6 { 4 } else { 1 };
        let n = sources.len();
        let check = (if v6 { 0 } else { 1 }) + per * n + 2; // the source checks, JA, RET
        p.push(op(LD_W_ABS, 0, 0, UDP_HEADER));
        p.push(op(JEQ, 1, 0, word(1))); // initiation: check its source
        p.push(op(JEQ, 0, check as u8, word(2))); // response too; anything else: by type
        if !v6 {
            p.push(op(LD_W_ABS, 0, 0, SOURCE_V4));
        }
        for (k, &(hi, lo)) in sources.iter().enumerate() {
            let to_drop = (per * (n - 1 - k) + 1) as u8;
            if v6 {
                p.push(op(LD_W_ABS, 0, 0, SOURCE_V6));
                p.push(op(JEQ, 0, 2, hi));
                p.push(op(LD_W_ABS, 0, 0, SOURCE_V6 + 4));
                p.push(op(JEQ, to_drop, 0, lo));
            } else {
                p.push(op(JEQ, to_drop, 0, hi));
            }
        }
        p.push(op(JA, 0, 0, 1)); // not blocked: by type
        p.push(op(RET, 0, 0, 0));
    }
    let slots_above = refused.slots_above.unwrap_or(MAX_SESSION_SLOT);
    p.extend_from_slice(&by_type(slots_above.min(MAX_SESSION_SLOT) as u32));
    p
}

/// Attaches the filter to `socket`, unless `MESHD_SOCKET_FILTER=off`.
pub(crate) fn attach(socket: &impl AsRawFd) -> io::Result<()> {
    attach_refusing(socket, &Refused::default(), false)
}

/// Attaches (or replaces, atomically) the filter of `socket`, an IPv6 one if `v6`, with what
/// `refused` says dropped too; unless `MESHD_SOCKET_FILTER=off`.
pub(crate) fn attach_refusing(
    socket: &impl AsRawFd,
    refused: &Refused,
    v6: bool,
) -> io::Result<()> {
    if std::env::var("MESHD_SOCKET_FILTER").is_ok_and(|v| v == "off") {
        return Ok(());
    }
    let filter = program(refused, v6);
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
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
    use std::net::{Ipv6Addr, UdpSocket};
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

    fn sources(sources: Vec<IpAddr>) -> Refused {
        Refused {
            sources,
            slots_above: None,
        }
    }

    /// A data message whose receiver index is in session slot `slot` (any counter).
    fn data_for(slot: u32, counter: u8) -> Vec<u8> {
        let mut m = message(4, 64);
        m[4..8].copy_from_slice(&(slot << 8 | u32::from(counter)).to_le_bytes());
        m
    }

    #[test]
    fn data_for_a_slot_past_the_bound_is_dropped_and_the_rest_kept() -> io::Result<()> {
        let receiver = UdpSocket::bind("127.0.0.1:0")?;
        let sender = UdpSocket::bind("127.0.0.1:0")?;
        let slots = [
            0, 1, 2, 0xff, 0x100, 0x101, 0x102, 0x103, 0x1ff, 0x200, 0xff02, 0x1_0000, 0x1_0102,
            0x10_0000, 0xff_ffff,
        ];
        for bound in [
            0,
            2,
            0x102,
            0x1_0000,
            0x1_0102,
            0xff_fffe,
            MAX_SESSION_SLOT as u32,
        ] {
            let refused = Refused {
                sources: Vec::new(),
                slots_above: Some(bound as usize),
            };
            attach_refusing(&receiver, &refused, false)?;
            let sent: Vec<Vec<u8>> = slots.iter().map(|&s| data_for(s, 0xa7)).collect();
            let kept: Vec<Vec<u8>> = slots
                .iter()
                .filter(|&&s| s <= bound)
                .map(|&s| data_for(s, 0xa7))
                .collect();
            assert_eq!(
                through(&sender, &receiver, &sent)?,
                kept,
                "bound {bound:#x}"
            );
        }
        // Handshake messages carry no session index: not bounded.
        let refused = Refused {
            sources: Vec::new(),
            slots_above: Some(0),
        };
        attach_refusing(&receiver, &refused, false)?;
        let handshakes = [message(1, 148), message(2, 92), message(3, 64)];
        assert_eq!(through(&sender, &receiver, &handshakes)?, handshakes);
        // With the sender blocked too, both hold.
        let refused = Refused {
            sources: vec![IpAddr::from([127, 0, 0, 1])],
            slots_above: Some(0x102),
        };
        attach_refusing(&receiver, &refused, false)?;
        let sent = [message(1, 148), data_for(0x102, 1), data_for(0x103, 1)];
        assert_eq!(through(&sender, &receiver, &sent)?, sent[1..2]);
        Ok(())
    }

    #[test]
    fn the_bound_leaves_headroom_past_the_highest_slot() {
        let mut refused = Refused::default();
        refused.set_highest_slot(None);
        assert_eq!(refused.slots_above, Some(SLOT_HEADROOM));
        refused.set_highest_slot(Some(40));
        assert_eq!(refused.slots_above, Some(40 + SLOT_HEADROOM));
        refused.set_highest_slot(Some(MAX_SESSION_SLOT - 1));
        assert_eq!(refused.slots_above, Some(MAX_SESSION_SLOT));
    }

    /// What `receiver` gets of `sent`, each sent from `sender`.
    fn through(
        sender: &UdpSocket,
        receiver: &UdpSocket,
        sent: &[Vec<u8>],
    ) -> io::Result<Vec<Vec<u8>>> {
        receiver.set_read_timeout(Some(Duration::from_millis(200)))?;
        for m in sent {
            sender.send_to(m, receiver.local_addr()?)?;
        }
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        while let Ok(n) = receiver.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        Ok(got)
    }

    #[test]
    fn a_blocked_source_loses_its_handshakes_only_and_others_keep_theirs() -> io::Result<()> {
        let receiver = UdpSocket::bind("127.0.0.1:0")?;
        let blocked = UdpSocket::bind("127.0.0.2:0")?;
        let other = UdpSocket::bind("127.0.0.3:0")?;
        let list: Vec<IpAddr> = vec![
            IpAddr::from([192, 0, 2, 9]),
            IpAddr::from([127, 0, 0, 2]),
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), // another family: ignored on this socket
        ];
        attach_refusing(&receiver, &sources(list), false)?;
        let sent = [
            message(1, 148),
            message(2, 92),
            message(3, 64),
            message(4, 64),
            message(9, 5),
        ];
        let from_blocked = through(&blocked, &receiver, &sent)?;
        assert_eq!(
            from_blocked,
            sent[2..4],
            "cookie replies and data still pass"
        );
        let from_other = through(&other, &receiver, &sent)?;
        assert_eq!(from_other, sent[..4]);
        // Unblocked again.
        attach(&receiver)?;
        assert_eq!(through(&blocked, &receiver, &sent)?, sent[..4]);
        Ok(())
    }

    #[test]
    fn an_ipv6_source_is_blocked_by_its_64() -> io::Result<()> {
        let Ok(receiver) = UdpSocket::bind("[::1]:0") else {
            return Ok(()); // no IPv6 loopback here
        };
        let sender = UdpSocket::bind("[::1]:0")?;
        let sent = [message(1, 148), message(4, 64)];
        let near: Vec<IpAddr> = vec![IpAddr::from(Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0xabcd))]; // ::1's /64
        attach_refusing(&receiver, &sources(near), true)?;
        assert_eq!(through(&sender, &receiver, &sent)?, sent[1..]);
        let far: Vec<IpAddr> = vec![
            IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            IpAddr::from([127, 0, 0, 1]),
        ];
        attach_refusing(&receiver, &sources(far), true)?;
        assert_eq!(through(&sender, &receiver, &sent)?, sent[..]);
        Ok(())
    }

    #[test]
    fn the_longest_list_still_fits_the_jumps() {
        let many: Vec<IpAddr> = (0..40u32)
            .map(|i| IpAddr::from(Ipv6Addr::from(u128::from(i) << 64)))
            .collect();
        let p = program(&sources(many), true);
        assert_eq!(p.len(), 3 + 4 * MAX_BLOCKED + 2 + by_type(0).len());
    }
}
