//! What the data path hands the caller's handshake worker.

use super::batch::{Batch, MIN_SLOT};
use std::net::IpAddr;

/// What the data path hands the handshake worker: messages to answer, peers to initiate to.
#[derive(Debug)]
pub struct HandshakeWork {
    /// Handshake initiations, responses and cookie replies, with their sender.
    pub messages: Batch,
    /// Slots of peers that sent data on a session this node no longer has.
    pub initiate: Vec<usize>,
    /// Slots of peers with packets waiting for the worker to make their session
    /// ([`Node::start`](super::Node::start)).
    pub start: Vec<usize>,
    /// Addresses sending handshake messages far past their budgets: worth blocking where
    /// they cost less (a socket filter).
    pub flooding: Vec<IpAddr>,
}

impl Default for HandshakeWork {
    fn default() -> Self {
        Self {
            messages: Batch::new(16, MIN_SLOT),
            initiate: Vec::new(),
            start: Vec::new(),
            flooding: Vec::new(),
        }
    }
}

impl HandshakeWork {
    pub fn clear(&mut self) {
        self.messages.clear();
        self.initiate.clear();
        self.start.clear();
        self.flooding.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.initiate.is_empty()
            && self.start.is_empty()
            && self.flooding.is_empty()
    }
}
