//! The memory a decoded user or group takes on the heap: what the record
//! cache counts kept records for (`store.record_cache_mib`), and what a
//! paged search counts a user it keeps for, when nothing else holds it.

use super::model::{Group, User};

/// Its size and the blocks its strings and lists take from the allocator.
pub trait Footprint {
    fn footprint(&self) -> usize;
}

/// A heap block of `len` bytes as the allocator hands it out (16-byte
/// granules; larger size classes are coarser), and what each block costs
/// the allocator beyond its bytes (measured with the record cache's fixed
/// overhead: see `store::sled::records`).
fn block(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.next_multiple_of(16) + 16
    }
}

fn string(s: &str) -> usize {
    block(s.len())
}

impl Footprint for User {
    fn footprint(&self) -> usize {
        let (text, ends) = self.attrs.heap_bytes();
        std::mem::size_of::<User>()
            + string(&self.username)
            + self.full_name.as_deref().map_or(0, string)
            + self.email.as_deref().map_or(0, string)
            + block(text)
            + block(ends)
    }
}

impl Footprint for Group {
    fn footprint(&self) -> usize {
        std::mem::size_of::<Group>()
            + string(&self.name)
            + self.description.as_deref().map_or(0, string)
    }
}
