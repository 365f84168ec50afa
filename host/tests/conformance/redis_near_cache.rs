//! The near cache in front of Redis (`redis.near_cache_max_bytes`), on the real Redis: views
//! are served from memory while Redis tracks the order keys, a change by another client is
//! seen as soon as its push arrives, this process always reads its own writes, and a lost
//! tracking connection turns the near cache off (and back on) without serving what changed
//! meanwhile.

use std::time::{Duration, Instant};

use orderpipe::backend::StatusCache;
use orderpipe::backend::redis::RedisCache;
use orderpipe::backend::redis::near_cache::{RECONNECT_PAUSE, connection_name};
use orderpipe::config::RedisConfig;
use orderpipe::order::{Order, OrderRequest, OrderView};
use uuid::Uuid;

use crate::{bounded, support};

/// How long a push (or noticing a closed connection) may take to reach the near cache here.
const PUSH_DELAY: Duration = Duration::from_secs(2);

fn view(id: Uuid, version: u64) -> OrderView {
    let mut order = Order::new(id, OrderRequest::default(), 1_700_000_000_000);
    order.version = version;
    order.status = format!("status_{version}");
    order.view()
}

/// Two caches on one key prefix: `reader` with a near cache, `writer` without (another
/// process, as the worker is to the API).
async fn caches() -> (RedisConfig, RedisCache, RedisCache) {
    let config = support::config("order").redis;
    let reader = bounded("connecting to Redis", RedisCache::connect(&config))
        .await
        .expect("Redis client");
    let mut writer_config = config.clone();
    writer_config.near_cache_max_bytes = 0;
    let writer = bounded("connecting to Redis", RedisCache::connect(&writer_config))
        .await
        .expect("Redis client");
    assert!(writer.near_cache().is_none(), "0 turns the near cache off");
    wait_until("Redis tracks the reader's order keys", || {
        reader.near_cache().expect("near cache on").is_serving()
    })
    .await;
    (config, reader, writer)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < crate::WAIT,
            "{what}: not within {:?}",
            crate::WAIT
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn get(cache: &RedisCache, id: Uuid) -> Option<OrderView> {
    bounded("reading the cache", cache.get(id))
        .await
        .expect("get")
}

async fn put(cache: &RedisCache, view: &OrderView) -> bool {
    bounded("writing the cache", cache.put(view))
        .await
        .expect("put")
}

/// Reads `id` through `cache` until it shows `version`, at most [`PUSH_DELAY`]; how long it took.
async fn seen_within(cache: &RedisCache, id: Uuid, version: u64) -> Duration {
    let started = Instant::now();
    loop {
        let seen = get(cache, id).await.map(|v| v.version);
        if seen == Some(version) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PUSH_DELAY,
            "version {version} of {id} not seen within {PUSH_DELAY:?} (still {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_read_are_kept_and_another_client_s_change_replaces_them() {
    let (config, reader, writer) = caches().await;
    let near = reader.near_cache().expect("near cache on");
    let ids: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        assert!(put(&writer, &view(*id, 1)).await);
        assert_eq!(get(&reader, *id).await, Some(view(*id, 1)));
    }
    // A view read while the push of the writer's put was still on its way is not kept; read
    // again, it is (no push is on its way any more).
    let started = Instant::now();
    while near.entry_count() < ids.len() as u64 {
        assert!(started.elapsed() < PUSH_DELAY, "every view read is kept");
        for id in &ids {
            assert_eq!(get(&reader, *id).await, Some(view(*id, 1)));
        }
    }
    let hits = near.reads("hit");
    for id in &ids {
        assert_eq!(
            get(&reader, *id).await,
            Some(view(*id, 1)),
            "served from memory"
        );
    }
    assert_eq!(
        near.reads("hit"),
        hits + ids.len() as u64,
        "each read a near-cache hit"
    );
    let mut delays = Vec::new();
    for id in &ids {
        assert!(put(&writer, &view(*id, 2)).await);
        delays.push(seen_within(&reader, *id, 2).await);
    }
    delays.sort_unstable();
    println!(
        "another client's change seen through the near cache after: p50 {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    // A deleted key (as by expiry) is forgotten too.
    let raw = redis::Client::open(config.url.as_str()).expect("client");
    let mut raw = raw.get_multiplexed_async_connection().await.expect("Redis");
    let _: () = redis::cmd("DEL")
        .arg(format!("{}:order:{}", config.key_prefix, ids[0]))
        .query_async(&mut raw)
        .await
        .expect("DEL");
    wait_until("a deleted key is forgotten", || near.get(ids[0]).is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_reads_its_own_writes_at_once() {
    let (_, reader, _) = caches().await;
    let id = Uuid::new_v4();
    for version in 1..=200 {
        assert!(put(&reader, &view(id, version)).await);
        // No wait: the put forgot the view before it returned.
        assert_eq!(
            get(&reader, id).await.map(|v| v.version),
            Some(version),
            "read right after this process wrote version {version}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_turns_the_near_cache_off_until_redis_tracks_again() {
    let (config, reader, writer) = caches().await;
    let near = reader.near_cache().expect("near cache on");
    let id = Uuid::new_v4();
    assert!(put(&writer, &view(id, 1)).await);
    // A read overtaken by the push of the writer's put is not kept; read again, it is.
    let started = Instant::now();
    loop {
        assert_eq!(get(&reader, id).await.map(|v| v.version), Some(1));
        if near.get(id).map(|v| v.version) == Some(1) {
            break;
        }
        assert!(started.elapsed() < PUSH_DELAY, "kept within {PUSH_DELAY:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let raw = redis::Client::open(config.url.as_str()).expect("client");
    let mut raw = raw.get_multiplexed_async_connection().await.expect("Redis");
    let name = connection_name(&format!("{}:order:", config.key_prefix));
    let killed = kill_by_name(&mut raw, &name).await;
    assert_eq!(
        killed, 1,
        "the tracking connection {name} was found and closed"
    );
    wait_until("the near cache stops serving", || !near.is_serving()).await;
    assert_eq!(
        near.get(id),
        None,
        "nothing served while Redis does not track"
    );
    // A change while nobody tracks: must not be hidden by what was kept before.
    assert!(put(&writer, &view(id, 2)).await);
    assert_eq!(get(&reader, id).await.map(|v| v.version), Some(2));
    let started = Instant::now();
    wait_until("Redis tracks the order keys again", || near.is_serving()).await;
    assert!(
        started.elapsed() < RECONNECT_PAUSE + crate::WAIT,
        "reconnected after its pause"
    );
    assert_eq!(near.get(id), None, "the old generation is forgotten");
    assert_eq!(get(&reader, id).await.map(|v| v.version), Some(2));
    assert!(put(&writer, &view(id, 3)).await);
    seen_within(&reader, id, 3).await;
}

/// Closes the connections named `name`; how many there were.
async fn kill_by_name(raw: &mut redis::aio::MultiplexedConnection, name: &str) -> i64 {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(raw)
        .await
        .expect("CLIENT LIST");
    let mut killed = 0;
    for line in list.lines() {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
        };
        if field("name").as_deref() == Some(name) {
            let id = field("id").expect("a client id");
            let _: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(&id)
                .query_async(raw)
                .await
                .expect("CLIENT KILL");
            killed += 1;
        }
    }
    killed
}
