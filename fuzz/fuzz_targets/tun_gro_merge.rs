//! Decrypted packets written to the TUN device with offload on: tun-rs's `handle_gro` merges
//! them per flow into as few writes as possible, in buffers laid out as the data path's TUN
//! writer lays them out.
//!
//! - The first byte: bit 0 allows UDP GRO. The rest: records (a length byte in units of 8, or
//!   0 for all that is left; then the packet).
//!
//! Holds: no panic; the buffers to write are distinct, in range, and each starts with a valid
//! virtio-net header; no bytes appear from nowhere (a merged write is at most the sum of its
//! packets).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd_fuzz::records;
use tun_rs::{handle_gro, VirtioNetHdr, VIRTIO_NET_HDR_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let mut bufs: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    for (tag, body) in records(rest).take(64) {
        let mut buf = Vec::with_capacity(2 * VIRTIO_NET_HDR_LEN + 65_535);
        buf.resize(VIRTIO_NET_HDR_LEN, 0);
        // The tag byte leads the packet: it is its version and header length.
        buf.push(tag);
        buf.extend_from_slice(body);
        total += buf.len() - VIRTIO_NET_HDR_LEN;
        bufs.push(buf);
    }
    if bufs.is_empty() {
        return;
    }
    let mut to_write = Vec::new();
    let result = handle_gro(
        &mut bufs,
        VIRTIO_NET_HDR_LEN,
        &mut Default::default(),
        &mut Default::default(),
        head & 1 != 0,
        &mut to_write,
    );
    if result.is_err() {
        return;
    }
    let mut seen = vec![false; bufs.len()];
    let mut written = 0;
    for &i in &to_write {
        assert!(
            i < bufs.len() && !seen[i],
            "buffer {i} written twice or out of range"
        );
        seen[i] = true;
        let buf = &bufs[i];
        assert!(VirtioNetHdr::decode(buf).is_ok());
        written += buf.len() - VIRTIO_NET_HDR_LEN;
    }
    assert!(written <= total, "{written} bytes written of {total} given");
});
