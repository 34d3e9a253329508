//! Simple Paged Results (RFC 2696) with real cookies.
//!
//! The first page runs the search once; the entries not yet sent stay with
//! the connection under a random cookie, so later pages neither repeat nor
//! skip entries even if the directory changes meanwhile. A connection keeps
//! at most [`MAX_OPEN_SEARCHES`] open; the oldest is dropped beyond that.
//!
//! Users are kept as their shared records ([`HeldUser`]), not as built
//! entries, whatever the filter (one the indexes leave to evaluate is
//! evaluated on an entry built for that alone): a paged search over a
//! million users holds a million pointers (and memberOf lists) where it
//! held a million entries, some 1.1 KB each for the attributes NSS
//! clients ask for, and was refused beyond some 240,000 users with the
//! default cap.
//!
//! What the kept entries hold is bounded server-wide: every stored search
//! reserves an estimate of its bytes from one [`PagedBudget`] shared by all
//! connections, and a search that would go beyond the cap is not stored
//! (the caller refuses it). A reservation goes back to the budget when its
//! entries are sent, when the search is dropped (taken, replaced, expired
//! after [`PagedBudget`]'s idle time, or gone with its connection): its
//! `Drop` does it, so no path can leak. Time is a parameter (`now`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::directory::search::CachedGroup;
use crate::directory::{Entry, HeldUser};

/// Open paged searches one connection may hold.
pub const MAX_OPEN_SEARCHES: usize = 8;

/// Default of `ldap.paged_results_max_bytes`: 256 MiB.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Default of `ldap.paged_results_idle_secs`.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// What every kept entry is counted for beyond its text: the entry, its
/// DN's parsed form and the queue slot.
const ENTRY_OVERHEAD: usize = 128;
/// Per attribute beyond its values' text (the attribute and its vector).
const ATTRIBUTE_OVERHEAD: usize = 48;
/// Per value beyond its text (the string header).
const VALUE_OVERHEAD: usize = 24;
/// Per stored search beyond its entries (table slots, cookie, order).
const SEARCH_OVERHEAD: usize = 256;

/// An entry a paged search keeps for a later page.
pub enum Held {
    Entry(Box<Entry>),
    /// A user's record and what the search found about it, written when
    /// its page is sent.
    User(HeldUser),
    /// A group's full entry, shared with the epoch cache.
    Group(CachedGroup),
}

/// Names what is held, never its values.
impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::Entry(e) => write!(f, "Entry({})", e.dn),
            Held::User(_) => f.write_str("User(..)"),
            Held::Group(g) => write!(f, "Group({})", g.entry.dn),
        }
    }
}

impl Held {
    /// The estimated bytes it holds (see [`entry_bytes`]).
    pub fn bytes(&self) -> usize {
        match self {
            Held::Entry(e) => entry_bytes(e),
            Held::User(u) => u.bytes(),
            // Its entry counts while nothing else (the epoch cache) holds
            // it, as a user's record ([`HeldUser::bytes`]).
            Held::Group(g) if Arc::strong_count(&g.entry) > 1 => std::mem::size_of::<Held>(),
            Held::Group(g) => entry_bytes(&g.entry),
        }
    }
}

/// The estimated bytes `entry` holds: its DN (normalised and parsed), the
/// names and values of its attributes, and fixed overheads.
pub fn entry_bytes(entry: &Entry) -> usize {
    let dn = 2 * entry.dn.normalized_str().len();
    let attrs: usize = entry
        .attrs
        .iter()
        .map(|a| {
            ATTRIBUTE_OVERHEAD
                + a.ty.name.len()
                + a.values
                    .iter()
                    .map(|v| VALUE_OVERHEAD + v.len())
                    .sum::<usize>()
        })
        .sum();
    ENTRY_OVERHEAD + dn + attrs
}

/// The server-wide bound on what paged searches keep; clones share one
/// count.
#[derive(Clone, Debug)]
pub struct PagedBudget {
    /// Bytes reserved by the stored searches of every connection.
    held: Arc<AtomicUsize>,
    /// The cap on `held` (`ldap.paged_results_max_bytes`).
    max_bytes: usize,
    /// A search not continued for this long is forgotten
    /// (`ldap.paged_results_idle_secs`).
    idle: Duration,
}

impl Default for PagedBudget {
    fn default() -> PagedBudget {
        PagedBudget::new(DEFAULT_MAX_BYTES, DEFAULT_IDLE)
    }
}

impl PagedBudget {
    pub fn new(max_bytes: usize, idle: Duration) -> PagedBudget {
        PagedBudget {
            held: Arc::new(AtomicUsize::new(0)),
            max_bytes,
            idle,
        }
    }

    /// An empty table for one connection, drawing on this budget.
    pub fn states(&self) -> PagingStates {
        PagingStates {
            inner: Arc::new(Mutex::new(Table::default())),
            budget: self.clone(),
        }
    }

    /// Bytes held now by the stored searches of every connection.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Bytes a new search could reserve now.
    fn room(&self) -> usize {
        self.max_bytes.saturating_sub(self.held())
    }

    /// Reserves `bytes`, or `None` when that would pass the cap.
    fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let max = self.max_bytes;
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= max)
            })
            .ok()?;
        crate::metrics::paged_bytes_add(bytes);
        Some(Reservation {
            held: self.held.clone(),
            bytes,
        })
    }
}

/// Bytes taken from a [`PagedBudget`]; given back when dropped.
#[derive(Debug)]
struct Reservation {
    held: Arc<AtomicUsize>,
    bytes: usize,
}

impl Reservation {
    /// Gives back `bytes` of it now (entries sent).
    fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.held.fetch_sub(bytes, Ordering::AcqRel);
        crate::metrics::paged_bytes_sub(bytes);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.release(bytes);
    }
}

/// A new paged search could not be kept: the server-wide cap is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the memory for paged searches is exhausted")]
pub struct OverBudget;

/// One paged search in progress; its entries' bytes stay reserved until
/// they are handed out by [`PagedSearch::next`] or the search is dropped.
#[derive(Debug)]
pub struct PagedSearch {
    /// What the client asked (base, scope, filter, attributes): a later page
    /// must repeat the same request (RFC 2696 §3).
    pub fingerprint: String,
    /// Entries still to send, in order.
    remaining: VecDeque<Held>,
    reservation: Reservation,
}

impl PagedSearch {
    /// Takes up to `n` of the entries still to send, giving their bytes
    /// back to the budget.
    pub fn next(&mut self, n: usize) -> Vec<Held> {
        let n = n.min(self.remaining.len());
        let page: Vec<Held> = self.remaining.drain(..n).collect();
        self.reservation
            .release(page.iter().map(Held::bytes).sum::<usize>());
        page
    }

    /// True once every entry has been handed out.
    pub fn is_done(&self) -> bool {
        self.remaining.is_empty()
    }
}

/// The open paged searches of one connection, shared by the operations
/// that run concurrently on it (clones share one table).
#[derive(Clone)]
pub struct PagingStates {
    inner: Arc<Mutex<Table>>,
    budget: PagedBudget,
}

impl Default for PagingStates {
    /// A table with a budget of its own (tests, tools): servers hand
    /// connections [`PagedBudget::states`].
    fn default() -> PagingStates {
        PagedBudget::default().states()
    }
}

struct Stored {
    search: PagedSearch,
    /// When its last page was sent.
    last_used: Instant,
}

#[derive(Default)]
struct Table {
    searches: HashMap<Vec<u8>, Stored>,
    /// Cookies, oldest first.
    order: VecDeque<Vec<u8>>,
}

impl Table {
    /// Forgets the searches idle for `idle` or longer at `now`.
    fn expire(&mut self, now: Instant, idle: Duration) {
        let searches = &mut self.searches;
        self.order.retain(|cookie| {
            let fresh = searches
                .get(cookie)
                .is_some_and(|s| now.saturating_duration_since(s.last_used) < idle);
            if !fresh {
                searches.remove(cookie);
            }
            fresh
        });
    }

    fn put(&mut self, search: PagedSearch, now: Instant) -> Vec<u8> {
        let mut cookie = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut cookie);
        while self.order.len() >= MAX_OPEN_SEARCHES {
            if let Some(old) = self.order.pop_front() {
                self.searches.remove(&old);
            }
        }
        self.order.push_back(cookie.clone());
        self.searches.insert(
            cookie.clone(),
            Stored {
                search,
                last_used: now,
            },
        );
        cookie
    }
}

impl PagingStates {
    fn table(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent at every step, so a poisoned lock is
        // still usable.
        match self.inner.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Stores the entries a new search has still to send and returns its
    /// cookie; nothing is stored when the budget cannot hold them.
    pub fn insert(
        &self,
        fingerprint: String,
        remaining: VecDeque<Held>,
        now: Instant,
    ) -> Result<Vec<u8>, OverBudget> {
        let mut this = self.table();
        // Idle searches of this connection give their bytes back first.
        this.expire(now, self.budget.idle);
        let bytes =
            SEARCH_OVERHEAD + fingerprint.len() + remaining.iter().map(Held::bytes).sum::<usize>();
        let reservation = self.budget.reserve(bytes).ok_or(OverBudget)?;
        let search = PagedSearch {
            fingerprint,
            remaining,
            reservation,
        };
        Ok(this.put(search, now))
    }

    /// Stores a search taken out by [`take`](Self::take) again, under a new
    /// cookie; its bytes are reserved already, so this cannot fail.
    pub fn put_back(&self, search: PagedSearch, now: Instant) -> Vec<u8> {
        let mut this = self.table();
        this.expire(now, self.budget.idle);
        this.put(search, now)
    }

    /// Takes the search behind `cookie` out of the table; `None` when it
    /// is unknown or was idle too long at `now`.
    pub fn take(&self, cookie: &[u8], now: Instant) -> Option<PagedSearch> {
        let mut this = self.table();
        this.expire(now, self.budget.idle);
        let stored = this.searches.remove(cookie)?;
        this.order.retain(|c| c != cookie);
        Some(stored.search)
    }

    /// Bytes a new search of this connection could keep now: a search
    /// that finds more stops there, to be refused.
    pub fn room(&self) -> usize {
        self.budget.room()
    }

    /// Forgets every open search (after a new bind: rights changed).
    pub fn clear(&self) {
        let mut this = self.table();
        this.searches.clear();
        this.order.clear();
    }

    /// Searches stored now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Dn;

    fn entries(n: usize) -> VecDeque<Held> {
        (0..n)
            .map(|i| {
                let dn = Dn::parse(&format!("uid=user{i},ou=users,dc=example,dc=com")).expect("dn");
                let mut e = Entry::new(dn);
                e.push("uid", vec![format!("user{i}")]);
                e.push("cn", vec![format!("User {i}"), "someone".into()]);
                Held::Entry(Box::new(e))
            })
            .collect()
    }

    fn cost(fingerprint: &str, entries: &VecDeque<Held>) -> usize {
        SEARCH_OVERHEAD + fingerprint.len() + entries.iter().map(Held::bytes).sum::<usize>()
    }

    const IDLE: Duration = Duration::from_secs(300);

    #[test]
    fn a_held_user_counts_its_record_only_while_nothing_else_holds_it() {
        use crate::directory::entry::Wanted;
        use crate::directory::UserEntry;
        use crate::store::User;
        let base = Dn::parse("dc=example,dc=com").expect("base");
        let mut alice = User::named("alice");
        alice
            .attrs
            .insert("homeDirectory".into(), "/home/alice".into());
        let user = Arc::new(alice);
        let wanted = Wanted::everything();
        let dn = "cn=alice,ou=users,dc=example,dc=com";
        let held = Held::User(UserEntry::for_test(&base, dn, &user, &[], false, &wanted).hold());
        // The record cache's copy is the one counted while it is there.
        let shared = held.bytes();
        assert!(shared <= 64, "{shared}");
        drop(user);
        let alone = held.bytes();
        let record = std::mem::size_of::<User>() + "alice".len() + "homeDirectory/home/alice".len();
        assert!(
            alone >= shared + record,
            "{alone} against {shared} + {record}"
        );
    }

    #[test]
    fn an_entry_costs_its_text_and_overheads() {
        let e = entries(1).pop_front().expect("entry");
        let text = "uid=user0,ou=users,dc=example,dc=com".len() * 2
            + "uid".len()
            + "user0".len()
            + "cn".len()
            + "User 0".len()
            + "someone".len();
        let fixed = ENTRY_OVERHEAD + 2 * ATTRIBUTE_OVERHEAD + 3 * VALUE_OVERHEAD;
        assert_eq!(e.bytes(), text + fixed);
    }

    #[test]
    fn insert_take_and_drop_give_back_exactly_what_was_reserved() {
        let budget = PagedBudget::new(usize::MAX, IDLE);
        let states = budget.states();
        let now = Instant::now();
        let (a, b) = (entries(5), entries(3));
        let (cost_a, cost_b) = (cost("a", &a), cost("b", &b));
        let ca = states.insert("a".into(), a, now).expect("a");
        let cb = states.insert("b".into(), b, now).expect("b");
        assert_eq!(budget.held(), cost_a + cost_b);

        // A page handed out gives its entries' bytes back; the rest stays.
        let mut sa = states.take(&ca, now).expect("a stored");
        let page = sa.next(2);
        let sent: usize = page.iter().map(Held::bytes).sum();
        assert_eq!(budget.held(), cost_a + cost_b - sent);
        let ca = states.put_back(sa, now);
        assert_eq!(budget.held(), cost_a + cost_b - sent);

        // Taken and dropped (abandoned, or the last page): all of it back.
        drop(states.take(&ca, now).expect("a again"));
        assert_eq!(budget.held(), cost_b);
        assert!(states.take(&ca, now).is_none(), "a cookie serves once");

        // A connection's table dropped with searches in it.
        drop(states);
        assert_eq!(budget.held(), 0);
        let _ = cb;
    }

    #[test]
    fn searches_replaced_beyond_the_connection_limit_or_cleared_give_back() {
        let budget = PagedBudget::new(usize::MAX, IDLE);
        let states = budget.states();
        let now = Instant::now();
        let one = cost("f", &entries(2));
        let first = states.insert("f".into(), entries(2), now).expect("0");
        for i in 1..MAX_OPEN_SEARCHES {
            states.insert("f".into(), entries(2), now).expect("i");
            assert_eq!(budget.held(), one * (i + 1));
        }
        // One more replaces the oldest: the total stays.
        states.insert("f".into(), entries(2), now).expect("9th");
        assert_eq!(states.len(), MAX_OPEN_SEARCHES);
        assert_eq!(budget.held(), one * MAX_OPEN_SEARCHES);
        assert!(states.take(&first, now).is_none(), "the oldest went");
        states.clear();
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn the_cap_refuses_and_stores_nothing_until_bytes_come_back() {
        let one = cost("f", &entries(4));
        let budget = PagedBudget::new(2 * one, IDLE);
        let (c1, c2) = (budget.states(), budget.states());
        let now = Instant::now();
        let kept = c1.insert("f".into(), entries(4), now).expect("first");
        c2.insert("f".into(), entries(4), now).expect("second");
        assert_eq!(budget.held(), 2 * one);
        // The cap is over all connections: neither may store a third.
        assert_eq!(c1.insert("f".into(), entries(4), now), Err(OverBudget));
        assert_eq!(c2.insert("f".into(), entries(1), now), Err(OverBudget));
        assert_eq!((c1.len(), c2.len()), (1, 1), "nothing stored");
        assert_eq!(budget.held(), 2 * one);
        // The second connection closes: its bytes are free again.
        drop(c2);
        assert_eq!(budget.held(), one);
        c1.insert("f".into(), entries(4), now).expect("fits again");
        assert!(c1.take(&kept, now).is_some());
    }

    #[test]
    fn idle_searches_expire_and_give_back() {
        let budget = PagedBudget::new(usize::MAX, IDLE);
        let states = budget.states();
        let t0 = Instant::now();
        let old = states.insert("f".into(), entries(3), t0).expect("old");
        let young = states
            .insert("f".into(), entries(2), t0 + Duration::from_secs(200))
            .expect("young");
        let young_cost = cost("f", &entries(2));

        // Just short of the idle time the old one is still there; a page
        // restarts its clock.
        let s = states
            .take(&old, t0 + IDLE - Duration::from_secs(1))
            .expect("not yet idle");
        let old = states.put_back(s, t0 + Duration::from_secs(299));

        // At 598 s the young one (last used at 200 s) is idle: unknown,
        // and its bytes are back; the old one, used at 299 s, is not yet.
        let at = t0 + Duration::from_secs(598);
        assert!(states.take(&young, at).is_none());
        let s = states.take(&old, at).expect("used at 299 s");
        drop(s);
        assert_eq!(budget.held(), 0);

        // Expiry on insert: a stale search does not hold the budget
        // against a new one.
        let tight = PagedBudget::new(young_cost, IDLE);
        let states = tight.states();
        states.insert("f".into(), entries(2), t0).expect("first");
        assert_eq!(
            states.insert("f".into(), entries(2), t0 + Duration::from_secs(10)),
            Err(OverBudget)
        );
        states
            .insert("f".into(), entries(2), t0 + IDLE)
            .expect("the first expired");
        assert_eq!(tight.held(), young_cost);
    }
}
