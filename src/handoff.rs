//! Items handed from one thread to another in batches over a bounded
//! channel: the offline import's reader hands users to its writer, an
//! LDIF export's reading hands users to its writing. A batch a send
//! moves costs one channel operation for many items.

use std::sync::mpsc::SyncSender;

/// The receiving thread is gone: nothing more can be handed over.
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

/// The sending end: items are sent once `size` of them are held, and by
/// [`Batches::flush`].
pub struct Batches<T> {
    tx: SyncSender<Vec<T>>,
    batch: Vec<T>,
    size: usize,
}

impl<T> Batches<T> {
    pub fn new(tx: SyncSender<Vec<T>>, size: usize) -> Batches<T> {
        Batches {
            tx,
            batch: Vec::with_capacity(size),
            size,
        }
    }

    /// Holds `item`, sending the batch once it is full.
    pub fn push(&mut self, item: T) -> Result<(), Gone> {
        self.batch.push(item);
        if self.batch.len() >= self.size {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the items held, if any.
    pub fn flush(&mut self) -> Result<(), Gone> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.size));
        self.tx.send(batch).map_err(|_| Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_arrive_in_order_in_full_batches_and_a_flushed_rest() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let mut batches = Batches::new(tx, 3);
        for i in 0..7 {
            batches.push(i).unwrap();
        }
        batches.flush().unwrap();
        batches.flush().unwrap();
        drop(batches);
        let got: Vec<Vec<i32>> = rx.iter().collect();
        assert_eq!(got, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    }

    #[test]
    fn a_receiver_gone_is_reported() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let mut batches = Batches::new(tx, 2);
        drop(rx);
        assert_eq!(batches.push(1), Ok(()));
        assert_eq!(batches.push(2), Err(Gone));
    }
}
