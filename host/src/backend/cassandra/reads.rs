//! Several callers' reads of single rows by key sent to Cassandra as one `IN` query.
//!
//! The read-side twin of [`super::batcher`]: on a small node a single-partition read
//! costs Cassandra mostly the request around it, so the worker's concurrent events (each
//! reading its order's state) share requests. Up to `in_flight` queries run at once; a read
//! arriving while they are all busy waits and joins the next query with the others that
//! arrived meanwhile, so at light load a read goes alone at once (no timer). Callers asking
//! for the same key at once share its answer. A failed query fails each of its callers, who
//! retry as they would have alone.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::batcher::Waiting;
use crate::backend::BackendResult;

/// Fetches the rows of the given keys; a key without a row is absent from the map.
pub type Fetch<T> =
    Arc<dyn Fn(Vec<Uuid>) -> BoxFuture<'static, BackendResult<HashMap<Uuid, T>>> + Send + Sync>;

struct Pending<T> {
    key: Uuid,
    done: oneshot::Sender<BackendResult<Option<T>>>,
}

/// Reads rows by key, many callers' keys in one query; see the module's documentation.
pub struct ReadBatcher<T> {
    queue: mpsc::UnboundedSender<Pending<T>>,
}

impl<T: Clone + Send + 'static> ReadBatcher<T> {
    /// Queries of at most `max_keys` keys, `in_flight` queries at once.
    pub fn new(fetch: Fetch<T>, max_keys: usize, in_flight: usize) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(send_queries(
            fetch,
            pending,
            max_keys.max(1),
            in_flight.max(1),
        ));
        Self { queue }
    }

    /// The row of `key`, if there is one.
    pub async fn read(&self, key: Uuid) -> BackendResult<Option<T>> {
        let stopped =
            || crate::backend::BackendError::unavailable("cassandra", "the read batcher stopped");
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Pending { key, done })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn send_queries<T: Clone + Send + 'static>(
    fetch: Fetch<T>,
    pending: mpsc::UnboundedReceiver<Pending<T>>,
    max_keys: usize,
    in_flight: usize,
) {
    let mut queue = Waiting::new(pending, in_flight);
    while let Some((first, permit)) = queue.next().await {
        let mut waiting: HashMap<Uuid, Vec<oneshot::Sender<BackendResult<Option<T>>>>> =
            HashMap::new();
        waiting.entry(first.key).or_default().push(first.done);
        while let Some(next) = queue.another() {
            if waiting.len() >= max_keys && !waiting.contains_key(&next.key) {
                queue.hold_back(next);
                break;
            }
            waiting.entry(next.key).or_default().push(next.done);
        }
        let fetch = fetch.clone();
        tokio::spawn(async move {
            answer(fetch(waiting.keys().copied().collect()).await, waiting);
            drop(permit);
        });
    }
}

/// Gives each waiting caller its key's row (or the query's error).
fn answer<T: Clone>(
    result: BackendResult<HashMap<Uuid, T>>,
    waiting: HashMap<Uuid, Vec<oneshot::Sender<BackendResult<Option<T>>>>>,
) {
    for (key, callers) in waiting {
        let row = match &result {
            Ok(rows) => Ok(rows.get(&key).cloned()),
            Err(error) => Err(error.clone()),
        };
        for caller in callers {
            let _ = caller.send(row.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn reads_waiting_together_share_one_query_and_each_gets_its_row() {
        let queries: Arc<Mutex<Vec<usize>>> = Arc::default();
        let seen = queries.clone();
        let fetch: Fetch<String> = Arc::new(move |keys: Vec<Uuid>| {
            seen.lock().unwrap().push(keys.len());
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                // Every key but the nil one has a row: its own id as text.
                Ok(keys
                    .into_iter()
                    .filter(|key| !key.is_nil())
                    .map(|key| (key, key.to_string()))
                    .collect())
            })
        });
        let reads = Arc::new(ReadBatcher::new(fetch, 8, 1));
        let keys: Vec<Uuid> = (0..9)
            .map(|n| if n == 4 { Uuid::nil() } else { Uuid::new_v4() })
            .collect();
        let answers = futures::future::join_all(keys.iter().map(|key| {
            let reads = reads.clone();
            let key = *key;
            async move { reads.read(key).await }
        }))
        .await;
        for (key, answer) in keys.iter().zip(answers) {
            let expected = (!key.is_nil()).then(|| key.to_string());
            assert_eq!(answer.expect("read"), expected);
        }
        let queries = queries.lock().unwrap().clone();
        assert!(
            queries.len() < keys.len() && queries.iter().all(|n| *n <= 8),
            "reads waiting at once share queries of at most 8 keys: {queries:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_query_fails_each_of_its_callers() {
        let fetch: Fetch<String> = Arc::new(|_keys| {
            Box::pin(async {
                Err(crate::backend::BackendError::unavailable(
                    "cassandra",
                    "down",
                ))
            })
        });
        let reads = ReadBatcher::new(fetch, 8, 1);
        let (a, b) = tokio::join!(reads.read(Uuid::new_v4()), reads.read(Uuid::new_v4()));
        assert!(a.is_err() && b.is_err());
    }
}
