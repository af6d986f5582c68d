//! The queue from the data thread to the handshake worker: bounded, and what finds it full is
//! dropped and counted (`handshake_queue_full`).

use meshd_core::counters::{DropCounters, DropReason, Side};
use meshd_core::node::{HandshakeWork, MIN_SLOT};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Messages the queue holds at most.
pub(crate) const QUEUE_ROOM: usize = 4096;
/// Messages taken off the queue at once.
pub(super) const TAKE: usize = 256;

pub(super) enum Job {
    Message {
        from: SocketAddr,
        len: usize,
        bytes: [u8; MIN_SLOT],
    },
    Initiate(usize),
    /// Make the session of the peer in this slot and send the packets that wait for it.
    Start(usize),
    /// Block this source's handshake messages in the kernel for a while.
    Block(IpAddr),
}

/// The data thread's hand-over to the worker.
#[derive(Default)]
pub(crate) struct HandshakeQueue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
}

impl HandshakeQueue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues what the data thread set aside; what finds the queue full is dropped and counted.
    pub(crate) fn push(&self, work: &HandshakeWork, drops: &DropCounters) {
        if work.is_empty() {
            return;
        }
        let mut jobs = self.lock();
        for (message, from) in work.messages.iter() {
            if jobs.len() >= QUEUE_ROOM {
                drops.add(Side::Inbound, DropReason::QueueFull, 1);
                continue;
            }
            let mut bytes = [0u8; MIN_SLOT];
            let len = message.len().min(MIN_SLOT);
            bytes[..len].copy_from_slice(&message[..len]);
            jobs.push_back(Job::Message { from, len, bytes });
        }
        for &slot in &work.initiate {
            queue_if_room(&mut jobs, Job::Initiate(slot));
        }
        for &slot in &work.start {
            queue_if_room(&mut jobs, Job::Start(slot));
        }
        // Ahead of the messages: the sooner it is blocked, the less the rest costs.
        for &ip in &work.flooding {
            jobs.push_front(Job::Block(ip));
        }
        drop(jobs);
        self.ready.notify_one();
    }

    /// Asks for an initiation to the peer in session `slot` (its endpoint changed).
    pub(crate) fn initiate(&self, slot: usize) {
        queue_if_room(&mut self.lock(), Job::Initiate(slot));
        self.ready.notify_one();
    }

    /// Wakes the worker: a reload stored a new node, whose new peers it may have to greet.
    pub(crate) fn wake(&self) {
        self.ready.notify_one();
    }

    /// Waits up to `wait` for jobs and moves up to [`TAKE`] of them into `into`; returns how
    /// many were queued before the take.
    pub(super) fn take(&self, into: &mut Vec<Job>, wait: Duration) -> usize {
        let mut jobs = self.lock();
        if jobs.is_empty() {
            jobs = self
                .ready
                .wait_timeout(jobs, wait)
                .map(|(j, _)| j)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let queued = jobs.len();
        into.extend(jobs.drain(..queued.min(TAKE)));
        queued
    }
}

/// A peer's job is queued only if there is room: the peer is named again (by its next packet,
/// the next datagram on a lost session, or its next DNS change).
fn queue_if_room(jobs: &mut VecDeque<Job>, job: Job) {
    if jobs.len() < QUEUE_ROOM {
        jobs.push_back(job);
    }
}
