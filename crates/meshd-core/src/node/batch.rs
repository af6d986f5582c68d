//! Reusable packet batches: one flat buffer cut into fixed-size slots, plus each slot's length
//! and address. The data path fills a batch, hands it to the core, and reuses it for the next
//! wake-up, so steady-state traffic allocates nothing.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Smallest buffer boringtun writes into (a handshake initiation).
pub const MIN_SLOT: usize = 148;

const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// A batch of packets (from the TUN device) or datagrams (with their remote address).
#[derive(Debug)]
pub struct Batch {
    data: Vec<u8>,
    stride: usize,
    lens: Vec<usize>,
    addrs: Vec<SocketAddr>,
}

impl Batch {
    /// Room for `slots` packets of up to `stride` bytes each. A batch grows past `slots` only
    /// when the core must emit more than the caller planned for (queued packets flushed after
    /// a handshake), and keeps that room for next time.
    pub fn new(slots: usize, stride: usize) -> Self {
        Self {
            data: vec![0; slots * stride],
            stride,
            lens: Vec::with_capacity(slots),
            addrs: Vec::with_capacity(slots),
        }
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Number of committed packets.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Slots available without growing.
    pub fn capacity(&self) -> usize {
        self.data.len() / self.stride
    }

    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    pub fn clear(&mut self) {
        self.lens.clear();
        self.addrs.clear();
    }

    /// The next free slot, to read or write a packet into before [`Batch::commit`].
    pub fn next_slot(&mut self) -> &mut [u8] {
        let start = self.len() * self.stride;
        if self.data.len() < start + self.stride {
            self.data.resize(start + self.stride, 0);
        }
        &mut self.data[start..start + self.stride]
    }

    /// Commits `len` bytes written into the slot from [`Batch::next_slot`].
    pub fn commit(&mut self, len: usize, addr: SocketAddr) {
        debug_assert!(len <= self.stride);
        self.lens.push(len.min(self.stride));
        self.addrs.push(addr);
    }

    /// Commits a TUN packet, which has no remote address.
    pub fn commit_packet(&mut self, len: usize) {
        self.commit(len, UNSPECIFIED);
    }

    /// Copies `bytes` into a new slot.
    pub fn push(&mut self, bytes: &[u8], addr: SocketAddr) {
        let n = bytes.len().min(self.stride);
        self.next_slot()[..n].copy_from_slice(&bytes[..n]);
        self.commit(n, addr);
    }

    /// Slots `range` as one contiguous run of bytes, if every slot but the last is full (so
    /// the packets lie back to back): what one segmentation-offload send takes, uncopied.
    pub fn contiguous(&self, range: std::ops::Range<usize>) -> Option<&[u8]> {
        let last = range.end.checked_sub(1)?;
        if range.start > last || last >= self.len() {
            return None;
        }
        if self.lens[range.start..last]
            .iter()
            .any(|&l| l != self.stride)
        {
            return None;
        }
        Some(&self.data[range.start * self.stride..last * self.stride + self.lens[last]])
    }

    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let len = *self.lens.get(i)?;
        let start = i * self.stride;
        Some((&self.data[start..start + len], self.addrs[i]))
    }

    pub fn iter(&self) -> BatchIter<'_> {
        self.into_iter()
    }

    /// Each slot's bytes without its address: packets for [`Node::handle_tun_packets`].
    ///
    /// [`Node::handle_tun_packets`]: crate::node::Node::handle_tun_packets
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(packet, _)| packet)
    }
}

/// Datagrams with their addresses, in order: what `Node::handle_datagrams` takes, so that the
/// caller may hand it a [`Batch`] or its own buffers (an offload's segments) alike.
impl<'a> IntoIterator for &'a Batch {
    type Item = (&'a [u8], SocketAddr);
    type IntoIter = BatchIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        BatchIter { batch: self, i: 0 }
    }
}

/// Iterator over a [`Batch`]'s committed slots.
pub struct BatchIter<'a> {
    batch: &'a Batch,
    i: usize,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (&'a [u8], SocketAddr);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.batch.get(self.i)?;
        self.i += 1;
        Some(item)
    }
}

/// The address of a TUN packet, which has none.
pub const NO_ADDR: SocketAddr = UNSPECIFIED;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_commit_and_grow_only_when_needed() {
        let mut b = Batch::new(2, 8);
        let a: SocketAddr = "192.0.2.1:5".parse().unwrap_or(UNSPECIFIED);
        b.next_slot()[..3].copy_from_slice(b"abc");
        b.commit(3, a);
        b.push(b"defgh", a);
        assert!(b.is_full());
        b.push(b"0123456789", a); // truncated to the stride, batch grows
        assert_eq!(b.len(), 3);
        assert_eq!(b.capacity(), 3);
        let got: Vec<_> = b.iter().map(|(p, _)| p.to_vec()).collect();
        assert_eq!(
            got,
            vec![b"abc".to_vec(), b"defgh".to_vec(), b"01234567".to_vec()]
        );
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.capacity(), 3);
    }

    #[test]
    fn full_slots_are_contiguous_and_a_short_one_only_at_the_end() {
        let a: SocketAddr = "192.0.2.1:5".parse().unwrap_or(UNSPECIFIED);
        let mut b = Batch::new(4, 4);
        b.push(b"aaaa", a);
        b.push(b"bbbb", a);
        b.push(b"cc", a);
        b.push(b"dddd", a);
        assert_eq!(b.contiguous(0..3), Some(&b"aaaabbbbcc"[..]));
        assert_eq!(b.contiguous(1..2), Some(&b"bbbb"[..]));
        assert_eq!(b.contiguous(2..4), None, "a short slot in the middle");
        assert_eq!(b.contiguous(3..5), None, "past the end");
        assert_eq!(b.contiguous(2..2), None, "empty");
    }
}
