//! Simple Paged Results (RFC 2696) with real cookies.
//!
//! The first page runs the search once; the entries not yet sent stay with
//! the connection under a random cookie, so later pages neither repeat nor
//! skip entries even if the directory changes meanwhile. A connection keeps
//! at most [`MAX_OPEN_SEARCHES`] open; the oldest is dropped beyond that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::RngCore;

use crate::directory::Entry;

/// Open paged searches one connection may hold.
pub const MAX_OPEN_SEARCHES: usize = 8;

/// One paged search in progress.
pub struct PagedSearch {
    /// What the client asked (base, scope, filter, attributes): a later page
    /// must repeat the same request (RFC 2696 §3).
    pub fingerprint: String,
    /// Entries still to send, in order.
    pub remaining: VecDeque<Entry>,
}

/// The open paged searches of one connection, shared by the operations
/// that run concurrently on it (clones share one table).
#[derive(Default, Clone)]
pub struct PagingStates {
    inner: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    searches: HashMap<Vec<u8>, PagedSearch>,
    /// Cookies, oldest first.
    order: VecDeque<Vec<u8>>,
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

    /// Stores a search and returns its new cookie.
    pub fn insert(&self, search: PagedSearch) -> Vec<u8> {
        let mut this = self.table();
        let mut cookie = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut cookie);
        while this.order.len() >= MAX_OPEN_SEARCHES {
            if let Some(old) = this.order.pop_front() {
                this.searches.remove(&old);
            }
        }
        this.order.push_back(cookie.clone());
        this.searches.insert(cookie.clone(), search);
        cookie
    }

    /// Takes the search behind `cookie` out of the table.
    pub fn take(&self, cookie: &[u8]) -> Option<PagedSearch> {
        let mut this = self.table();
        let search = this.searches.remove(cookie)?;
        this.order.retain(|c| c != cookie);
        Some(search)
    }

    /// Forgets every open search (after a new bind: rights changed).
    pub fn clear(&self) {
        let mut this = self.table();
        this.searches.clear();
        this.order.clear();
    }
}
