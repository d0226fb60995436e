//! Messages held outside the FIFO chunks, by id: in flight under a lease, delayed,
//! or returned (ready again after a delivery). Each keeps its payload in its own
//! allocation, so an acknowledged message's memory is released at once.

use std::collections::HashMap;
use std::hash::Hash;

use crate::protocol::LeaseRef;

use super::TimerKey;

/// Memory charged per held message on top of its payload: its entry in the id map,
/// its timer, its owner's list and the allocator's share. An estimate, kept on the
/// high side so that the cap holds (BENCHMARKS.md has the measured RSS).
pub const HELD_OVERHEAD: usize = 160;

/// The lease a `LEASE` asks for, with the server's defaults already applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSpec {
    /// Lease length in milliseconds (more than 0).
    pub lease_ms: u32,
    /// Charged deliveries before dead-lettering; `NEVER_DEAD` for never.
    pub max_deliveries: u16,
    /// The lease does not end with the connection.
    pub detached: bool,
}

/// A live lease.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease<W> {
    /// Its deadline's timer (the deadline is `timer.0`).
    pub(super) timer: TimerKey,
    /// The connection it ends with, unless detached.
    pub(super) owner: Option<W>,
    /// Length it was given with (what a `TOUCH` of 0 renews).
    pub(super) lease_ms: u32,
    pub(super) max_deliveries: u16,
}

/// Where a held message is.
#[derive(Debug)]
pub(super) enum HeldState<W> {
    /// In its queue's `returned` set (or, briefly, being placed).
    Ready,
    /// Leased.
    InFlight(Lease<W>),
    /// Waiting for its timer.
    Delayed { timer: TimerKey },
}

/// A message held outside the FIFO chunks.
#[derive(Debug)]
pub(super) struct Held<W> {
    pub(super) payload: Box<[u8]>,
    /// Slab key of its queue (a queue with held messages is never removed).
    pub(super) queue: usize,
    /// Leases given so far; only ever goes up, so (id, attempt) names one lease.
    pub(super) attempt: u32,
    /// Deliveries that ended without an ACK and were not excused.
    pub(super) charged: u16,
    pub(super) priority: u8,
    pub(super) state: HeldState<W>,
}

/// The leases one connection was given, so that they can be returned when it
/// closes. Entries are not removed when a lease ends (that would cost a search per
/// ACK); the list is pruned of ended leases whenever it doubles, which keeps it
/// within twice the live count plus a constant, at amortised O(1) per lease.
#[derive(Debug, Default)]
pub(super) struct OwnedLeases {
    leases: Vec<LeaseRef>,
    prune_at: usize,
}

/// Smallest length at which the list is pruned.
const PRUNE_MIN: usize = 64;

impl OwnedLeases {
    /// Records a new lease; prunes ended ones first if the list has doubled.
    pub(super) fn push<W: Eq + Hash>(&mut self, lease: LeaseRef, held: &HashMap<u64, Held<W>>) {
        if self.leases.len() >= self.prune_at.max(PRUNE_MIN) {
            self.leases.retain(|l| {
                held.get(&l.id).is_some_and(|h| {
                    h.attempt == l.attempt && matches!(h.state, HeldState::InFlight(_))
                })
            });
            self.prune_at = 2 * self.leases.len();
        }
        self.leases.push(lease);
    }

    /// Every lease recorded (some may have ended since).
    pub(super) fn into_leases(self) -> Vec<LeaseRef> {
        self.leases
    }
}
