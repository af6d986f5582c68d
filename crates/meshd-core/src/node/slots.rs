//! Session slot → peer, for every datagram that carries one of our session indices.
//!
//! A sorted vector searched by halves, not a hash map: a datagram after a pause finds the
//! caches cold, and a hash map's lookup is a hash and two more lines to miss (its control
//! bytes and its bucket); a vector of a few peers is one line. Until a reload adds peers, a
//! peer's slot is its index in the plan, and [`super::Node`] tries that first.

/// `(slot, index in the node's peers)`, sorted by slot; slots are unique.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotIndex(Vec<(usize, usize)>);

impl SlotIndex {
    pub(crate) fn new(mut pairs: Vec<(usize, usize)>) -> Self {
        pairs.sort_unstable();
        pairs.dedup_by_key(|&mut (slot, _)| slot);
        Self(pairs)
    }

    pub(crate) fn get(&self, slot: usize) -> Option<usize> {
        let at = self.0.binary_search_by_key(&slot, |&(s, _)| s).ok()?;
        Some(self.0[at].1)
    }

    pub(crate) fn contains(&self, slot: usize) -> bool {
        self.get(slot).is_some()
    }

    pub(crate) fn highest(&self) -> Option<usize> {
        self.0.last().map(|&(slot, _)| slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_slot_and_nothing_else() {
        let index = SlotIndex::new(vec![(7, 0), (2, 1), (1 << 23, 2), (40, 3)]);
        assert_eq!(index.get(7), Some(0));
        assert_eq!(index.get(2), Some(1));
        assert_eq!(index.get(1 << 23), Some(2));
        assert_eq!(index.get(40), Some(3));
        for missing in [0, 1, 3, 8, 39, 41, (1 << 24) - 1] {
            assert_eq!(index.get(missing), None, "{missing}");
            assert!(!index.contains(missing));
        }
        assert_eq!(index.highest(), Some(1 << 23));
        assert!(SlotIndex::default().get(0).is_none());
        assert_eq!(SlotIndex::default().highest(), None);
    }
}
