//! Draining what already waits in a channel into a batch, up to a size: how a ledger task gathers jobs
//! and a committer gathers ledgers' batches.

use tokio::sync::mpsc;

/// Moves the items already queued into `batch` until their `size`s, with those of `batch`, reach `max`.
pub(crate) fn take_waiting<T>(
    queue: &mut mpsc::Receiver<T>,
    batch: &mut Vec<T>,
    max: usize,
    size: impl Fn(&T) -> usize,
) {
    let mut total: usize = batch.iter().map(&size).sum();
    while total < max {
        match queue.try_recv() {
            Ok(item) => {
                total += size(&item);
                batch.push(item);
            }
            Err(_) => break,
        }
    }
}
