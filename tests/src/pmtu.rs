//! Path MTU errors as a router on the underlay would send them: ICMP "fragmentation needed"
//! (IPv4) or ICMPv6 "packet too big", quoting a UDP datagram from `victim` to `peer`, sent
//! from a raw socket inside a namespace; and the path MTU a namespace has learnt for an address.

use crate::netns::Netns;
use crate::transfer::spawn_in_netns;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP message (with its checksum for IPv4; the kernel fills ICMPv6's).
fn message(victim: SocketAddr, peer: SocketAddr, mtu: u16) -> Result<Vec<u8>, String> {
    // The quoted datagram: a UDP header claiming 100 bytes of payload.
    let mut udp = Vec::with_capacity(8);
    udp.extend_from_slice(&victim.port().to_be_bytes());
    udp.extend_from_slice(&peer.port().to_be_bytes());
    udp.extend_from_slice(&108u16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    match (victim.ip(), peer.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            // version 4, 20 bytes; 128 bytes in all; don't fragment; TTL 64; UDP.
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&128u16.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, libc::IPPROTO_UDP as u8, 0, 0]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let sum = checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            // type 3 (destination unreachable), code 4 (fragmentation needed), the MTU.
            let mut m = vec![3, 4, 0, 0, 0, 0];
            m.extend_from_slice(&mtu.to_be_bytes());
            m.extend_from_slice(&ip);
            m.extend_from_slice(&udp);
            let sum = checksum(&m);
            m[2..4].copy_from_slice(&sum.to_be_bytes());
            Ok(m)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut ip = vec![0x60, 0, 0, 0, 0, 108, libc::IPPROTO_UDP as u8, 64];
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            // type 2 (packet too big), code 0, the MTU in 32 bits.
            let mut m = vec![2, 0, 0, 0];
            m.extend_from_slice(&u32::from(mtu).to_be_bytes());
            m.extend_from_slice(&ip);
            m.extend_from_slice(&udp);
            Ok(m)
        }
        _ => Err(format!("{victim} and {peer} are of different families")),
    }
}

/// Sends, from namespace `ns`, a path MTU error to `victim`'s address about a datagram that
/// `victim` sent to `peer`: the next hop takes at most `mtu` bytes.
pub fn send_too_big(
    ns: &str,
    victim: SocketAddr,
    peer: SocketAddr,
    mtu: u16,
) -> Result<(), String> {
    let msg = message(victim, peer, mtu)?;
    let h = spawn_in_netns(ns, move || {
        let (family, proto) = match victim {
            SocketAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
            SocketAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
        };
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(family, libc::SOCK_RAW, proto) };
        if fd < 0 {
            return Err(format!("raw socket: {}", io::Error::last_os_error()));
        }
        // SAFETY: a descriptor just opened and owned by nothing else; closed on drop.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let (addr, len) = sockaddr(victim.ip());
        // SAFETY: a valid buffer and a sockaddr of the stated length.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                std::ptr::addr_of!(addr).cast(),
                len,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(format!("send the ICMP error to {}: {err}", victim.ip()));
        }
        Ok(())
    });
    h.join()
        .unwrap_or_else(|_| Err("ICMP sender thread panicked".into()))
}

fn sockaddr(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than, and aligned for, sockaddr_in.
            let sin = unsafe { &mut *std::ptr::addr_of_mut!(ss).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *std::ptr::addr_of_mut!(ss).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// The path MTU `ns` has learnt for `dst` (from `ip route get`), if any.
pub fn learnt_mtu(ns: &Netns, dst: IpAddr) -> Option<u32> {
    let out = ns.ip(&["route", "get", &dst.to_string()]);
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mtu" {
            return words.next().and_then(|v| v.parse().ok());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_message_with_its_checksum_is_zero() {
        let m = message(
            "192.0.2.1:51820".parse().unwrap(),
            "192.0.2.2:51820".parse().unwrap(),
            1300,
        )
        .unwrap();
        assert_eq!(m.len(), 8 + 20 + 8);
        assert_eq!(checksum(&m), 0);
        assert_eq!(checksum(&m[8..28]), 0, "the quoted IPv4 header's checksum");
        assert_eq!(&m[6..8], &1300u16.to_be_bytes());
    }

    #[test]
    fn families_must_match() {
        let v4: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        assert!(message(v4, v6, 1300).is_err());
        let m = message(v6, v6, 1300).unwrap();
        assert_eq!(m.len(), 8 + 40 + 8);
    }
}
