//! A read from the TUN device with offload on: a virtio-net header and a TSO/USO segment, split
//! by tun-rs's `gso_split` into the data path's buffers, then encrypted by the node.
//!
//! - The first 10 bytes are the virtio-net header, the rest the segment (IPv4 or IPv6).
//! - The checks before the split are those of tun-rs's `recv_multiple`, which the target
//!   cannot call without a device; `gso_split` trusts them.
//!
//! Holds: no panic; every segment fits its buffer; the node takes every split packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd_core::node::{slot_size, Batch, NO_ADDR};
use meshd_fuzz::Pair;
use std::sync::OnceLock;
use tun_rs::{gso_split, VirtioNetHdr, VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6};
use tun_rs::{VIRTIO_NET_HDR_GSO_UDP_L4, VIRTIO_NET_HDR_LEN};

/// Buffers per read, as the data path's TUN reader has them.
const BUFS: usize = 64;

static PAIR: OnceLock<Pair> = OnceLock::new();

/// The checks `recv_multiple` makes before `gso_split`; `None` where it returns an error.
fn checked(mut hdr: VirtioNetHdr, input: &[u8]) -> Option<(VirtioNetHdr, bool)> {
    if hdr.gso_size == 0 {
        return None;
    }
    let is_v6 = match input.first()? >> 4 {
        4 => false,
        6 => true,
        _ => return None,
    };
    let udp = match (hdr.gso_type, is_v6) {
        (VIRTIO_NET_HDR_GSO_TCPV4, false) | (VIRTIO_NET_HDR_GSO_TCPV6, true) => false,
        (VIRTIO_NET_HDR_GSO_UDP_L4, _) => true,
        _ => return None,
    };
    let len = input.len();
    if udp {
        hdr.hdr_len = hdr.csum_start.checked_add(8)?;
    } else {
        if len <= hdr.csum_start as usize + 12 {
            return None;
        }
        let tcp_h_len = ((input[hdr.csum_start as usize + 12] as u16) >> 4) * 4;
        if !(20..=60).contains(&tcp_h_len) {
            return None;
        }
        hdr.hdr_len = hdr.csum_start.checked_add(tcp_h_len)?;
    }
    if len < hdr.hdr_len as usize || hdr.hdr_len < hdr.csum_start {
        return None;
    }
    let csum_end = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset) + 1;
    if csum_end > len {
        return None;
    }
    Some((hdr, is_v6))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < VIRTIO_NET_HDR_LEN {
        return;
    }
    let Ok(hdr) = VirtioNetHdr::decode(data) else {
        return;
    };
    let mut input = data[VIRTIO_NET_HDR_LEN..].to_vec();
    let Some((hdr, is_v6)) = checked(hdr, &input) else {
        return;
    };
    let stride = slot_size(1420);
    let mut bufs = vec![vec![0u8; stride]; BUFS];
    let mut sizes = vec![0usize; BUFS];
    let Ok(n) = gso_split(&mut input, hdr, &mut bufs, &mut sizes, 0, is_v6) else {
        return;
    };
    assert!(n <= BUFS);
    let pair = PAIR.get_or_init(Pair::new);
    let mut packets = Batch::new(BUFS, stride);
    for (buf, &size) in bufs.iter().zip(&sizes).take(n) {
        assert!(
            size <= buf.len(),
            "segment of {size} bytes in a {stride}-byte buffer"
        );
        packets.push(&buf[..size], NO_ADDR);
    }
    let mut out = Batch::new(BUFS, stride);
    meshd_fuzz::send(&pair.a, &packets, &mut out);
});
