//! Messages held outside the FIFO chunks, by id: in flight under a lease, delayed,
//! or returned (ready again after a delivery). Each keeps its payload in its own
//! allocation, so an acknowledged message's memory is released at once.

use std::time::Instant;

use crate::protocol::LeaseRef;

use super::bodies::Payload;
use super::idhash::IdMap;

/// Memory charged per held message on top of its payload, so that the cap holds
/// for leased and delayed messages too: the 56-byte `Held` in the id map (whose
/// table runs between half and seven eighths full), its 24-byte key in the deadline
/// set, the owner's list entry and the payload allocation's own overhead. Measured
/// (BENCHMARKS.md): a million 32-byte messages in flight take 225 MiB of RSS, about
/// 235 bytes each, at the worst point of the map's growth; 200 plus the payload
/// covers that.
pub const HELD_OVERHEAD: usize = 200;

const _: () = assert!(std::mem::size_of::<Held>() <= 56);

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

/// Where a held message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeldState {
    /// In its queue's `returned` set (or, briefly, being placed).
    Ready,
    /// Leased until `deadline`.
    InFlight,
    /// Waiting until `deadline`.
    Delayed,
}

/// A message held outside the FIFO chunks. Kept small (56 bytes on 64-bit targets
/// with the payload pointer), because a million leases means a million of these.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) payload: Payload,
    /// End of the lease (in flight) or due time (delayed); its key in
    /// `Store::deadlines` is `(deadline, id)`.
    pub(super) deadline: Instant,
    /// Slab key of its queue (a queue with held messages is never removed).
    pub(super) queue: u32,
    /// Leases given so far; only ever goes up, so (id, attempt) names one lease.
    pub(super) attempt: u32,
    /// The connection the lease ends with (`Store::owners` numbers them); 0 for a
    /// detached lease or when not in flight.
    pub(super) owner: u32,
    /// Length the lease was given with (what a `TOUCH` of 0 renews).
    pub(super) lease_ms: u32,
    /// Deliveries that ended without an ACK and were not excused.
    pub(super) charged: u16,
    /// Charged deliveries allowed by the current lease before dead-lettering.
    pub(super) max_deliveries: u16,
    pub(super) priority: u8,
    pub(super) state: HeldState,
    /// It holds a unique key (`Store::uniques`), released when it leaves its queue.
    pub(super) keyed: bool,
    /// It has an expiry (`Store::expiries`), dropped when it leaves its queue.
    pub(super) expires: bool,
}

impl Held {
    /// A message not in flight: ready (`deadline` unused) or delayed until
    /// `deadline`, with no lease, key or expiry yet.
    pub(super) fn waiting(
        payload: Payload,
        queue: usize,
        priority: u8,
        (attempt, charged): (u32, u16),
        state: HeldState,
        deadline: Instant,
    ) -> Held {
        Held {
            payload,
            deadline,
            queue: queue as u32,
            attempt,
            owner: 0,
            lease_ms: 0,
            charged,
            max_deliveries: 0,
            priority,
            state,
            keyed: false,
            expires: false,
        }
    }
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
    pub(super) fn push(&mut self, lease: LeaseRef, held: &IdMap<u64, Held>) {
        if self.leases.len() >= self.prune_at.max(PRUNE_MIN) {
            self.leases.retain(|l| {
                held.get(&l.id)
                    .is_some_and(|h| h.attempt == l.attempt && h.state == HeldState::InFlight)
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
