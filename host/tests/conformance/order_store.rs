//! The order store role: [`OrderStore`] (orders, the version compare-and-set, history,
//! idempotency keys), against the embedded store and Cassandra. The fixture also carries the
//! [`PluginStore`] of the same backend, for `plugin_data`.

use std::sync::Arc;

use orderpipe::backend::cassandra::CassandraStore;
use orderpipe::backend::embedded::EmbeddedStore;
use orderpipe::backend::{
    Advance, Applied, IdempotencyClaim, OrderStore, PluginStore, PluginWrite, StoredOrder,
};
use orderpipe::order::{HistoryEntry, LineItem, Order, OrderRequest, Outcome};
use serde_json::json;
use uuid::Uuid;

use crate::{bounded, support};

/// Cassandra connections are made one at a time: the first applies the schema, and
/// concurrent schema changes are something Cassandra handles badly.
pub static CONNECT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One backend's order store and plugin store.
pub struct Stores {
    pub orders: Arc<dyn OrderStore>,
    pub plugins: Arc<dyn PluginStore>,
    /// Kept for as long as the embedded store uses it.
    _dir: Option<tempfile::TempDir>,
}

impl Stores {
    pub async fn embedded() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open the embedded store"));
        Stores {
            orders: store.clone(),
            plugins: store,
            _dir: Some(dir),
        }
    }

    pub async fn cassandra() -> Self {
        Self::cassandra_with(support::config("order").cassandra).await
    }

    pub async fn cassandra_with(config: orderpipe::config::CassandraConfig) -> Self {
        let store = {
            let _one_at_a_time = CONNECT.lock().await;
            bounded("connecting to Cassandra", CassandraStore::connect(&config))
                .await
                .expect("Cassandra answers (cargo xtask servers up)")
        };
        let store = Arc::new(store);
        Stores {
            orders: store.clone(),
            plugins: store,
            _dir: None,
        }
    }
}

pub(crate) fn new_order() -> Order {
    let request = OrderRequest {
        customer: Some("ada".into()),
        items: vec![
            LineItem {
                sku: "A-1".into(),
                qty: 2,
                unit_price: 9.99,
            },
            LineItem {
                sku: "B-2".into(),
                qty: 1,
                unit_price: 5.0,
            },
        ],
        currency: Some("EUR".into()),
        attributes: json!({"gift": true, "note": "ring twice"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    };
    Order::new(Uuid::new_v4(), request, 1_700_000_000_000)
}

/// The order after one more event moved it to `to`, with an attribute a plugin set.
pub(crate) fn advanced(order: &Order, to: &str) -> Order {
    let mut next = order.clone();
    next.version += 1;
    next.status = to.into();
    next.updated_at_ms += 1_000;
    next.attributes
        .insert(format!("step_{}", next.version), json!(to));
    next
}

pub(crate) fn entry_for(before: &Order, after: &Order, outcome: Outcome) -> HistoryEntry {
    HistoryEntry {
        seq: after.version,
        event_id: Uuid::new_v4(),
        event_type: format!("event_{}", after.version),
        outcome,
        from: before.status.clone(),
        to: after.status.clone(),
        reason: format!("because {}", after.version),
        plugin: "order".into(),
        plugin_version: "0.1.0".into(),
        at_ms: after.updated_at_ms,
    }
}

async fn load(store: &dyn OrderStore, id: Uuid) -> Option<orderpipe::backend::StoredOrder> {
    bounded("loading an order", store.load_order(id))
        .await
        .expect("load")
}

async fn record(
    store: &dyn OrderStore,
    updated: &Order,
    expected: u64,
    entry: &HistoryEntry,
) -> Applied {
    bounded(
        "recording an event",
        store.record_event(updated, expected, entry),
    )
    .await
    .expect("record")
}

async fn history(store: &dyn OrderStore, id: Uuid) -> Vec<HistoryEntry> {
    bounded("reading history", store.history(id))
        .await
        .expect("history")
}

conformance!(Stores { embedded, cassandra }:
    create_order_is_if_not_exists,
    an_accepted_order_never_replaces_what_is_stored,
    load_order_returns_what_was_stored,
    record_event_applies_only_at_the_expected_version,
    record_event_for_an_unknown_order_conflicts,
    concurrent_record_events_at_one_version_apply_once,
    history_is_oldest_first,
    history_pages_follow_the_sequence,
    project_status_and_ping_answer,
    an_idempotency_key_is_claimed_once,
    a_record_keeps_its_pipeline,
    a_customers_records_page_newest_first,
    the_next_event_of_an_order_not_stored_yet_stores_it,
    the_next_event_chains_from_the_state_it_left,
    recording_the_next_event_twice_leaves_one_entry,
    a_replayed_older_event_never_replaces_a_newer_state,
    a_plugin_s_writes_land_with_its_event,
);

async fn record_next(
    store: &dyn OrderStore,
    basis: &StoredOrder,
    updated: &Order,
    entry: &HistoryEntry,
) -> Advance {
    bounded(
        "recording the next event",
        store.record_next_event(basis, updated, entry),
    )
    .await
    .expect("record the next event")
}

/// The revision of a recorded advance (a test fails on `Stale` where none is possible).
fn recorded(advance: Advance) -> i64 {
    match advance {
        Advance::Recorded { revision } => revision,
        Advance::Stale => panic!("the store called a current basis stale"),
    }
}

/// The worker's first event of an order the API has not stored (yet): recording it stores
/// the whole order, files it under its customer, and a later acceptance write changes nothing.
async fn the_next_event_of_an_order_not_stored_yet_stores_it(stores: &Stores) {
    let store = stores.orders.as_ref();
    let mut order = new_order();
    order.request.customer = Some(format!("cust-{}", Uuid::new_v4()));
    let basis = StoredOrder::not_stored(order.clone());
    let next = advanced(&order, "processed");
    let entry = entry_for(&order, &next, Outcome::Transitioned);
    recorded(record_next(store, &basis, &next, &entry).await);

    let stored = load(store, order.id)
        .await
        .expect("stored by its first event");
    assert_eq!(stored.order, next);
    assert_eq!(stored.recorded_events, vec![entry.event_id]);
    assert_eq!(history(store, order.id).await, vec![entry]);
    let customer = order.request.customer.as_deref().unwrap_or_default();
    let filed = bounded(
        "listing the customer's records",
        store.customer_records("orders", customer, None, 10),
    )
    .await
    .expect("customer records");
    assert_eq!(
        filed.iter().map(|key| key.id).collect::<Vec<_>>(),
        vec![order.id]
    );

    // The API's acceptance write arriving late never replaces the recorded state.
    bounded(
        "storing the accepted order",
        store.store_accepted_order(&order),
    )
    .await
    .expect("store accepted");
    assert_eq!(load(store, order.id).await.expect("stored").order, next);
}

/// Every store records the deciding plugin's writes with the event (the worker hands them
/// over instead of applying them first): a put and a delete, on an order already stored and
/// on one its first event stores.
async fn a_plugin_s_writes_land_with_its_event(stores: &Stores) {
    let store = stores.orders.as_ref();
    assert!(store.records_plugin_writes());
    let plugin = format!("p{}", Uuid::new_v4().simple());
    let write = |key: &str, value: Option<&str>| PluginWrite {
        plugin: plugin.clone(),
        table: "t".into(),
        key: key.into(),
        value: value.map(str::to_owned),
    };
    bounded(
        "a row to delete",
        stores.plugins.put(&plugin, "t", "gone", "old"),
    )
    .await
    .expect("put");
    let stored_order = new_order();
    bounded("accepting", store.store_accepted_order(&stored_order))
        .await
        .expect("store accepted");
    let stored_basis = load(store, stored_order.id).await.expect("accepted order");
    let cases = [
        (
            stored_basis,
            vec![write("kept", Some("1")), write("gone", None)],
        ),
        (
            StoredOrder::not_stored(new_order()),
            vec![write("first", Some("2"))],
        ),
    ];
    for (basis, writes) in cases {
        let next = advanced(&basis.order, "paid");
        let entry = entry_for(&basis.order, &next, Outcome::Transitioned);
        let advance = bounded(
            "recording with the plugin's writes",
            store.record_next_event_with(&basis, &next, &entry, &writes),
        )
        .await
        .expect("record");
        recorded(advance);
        assert_eq!(load(store, next.id).await.expect("stored").order, next);
    }
    let row = |key: &'static str| stores.plugins.get(&plugin, "t", key);
    assert_eq!(
        bounded("kept", row("kept")).await.expect("get").as_deref(),
        Some("1")
    );
    assert_eq!(bounded("gone", row("gone")).await.expect("get"), None);
    assert_eq!(
        bounded("first", row("first"))
            .await
            .expect("get")
            .as_deref(),
        Some("2")
    );
}

/// The state a recorded event left (as the worker keeps it) is a basis for the next event,
/// as a state read back from the store is.
async fn the_next_event_chains_from_the_state_it_left(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    bounded(
        "storing the accepted order",
        store.store_accepted_order(&order),
    )
    .await
    .expect("store accepted");
    let mut basis = load(store, order.id).await.expect("accepted order");
    let mut expected = Vec::new();
    for to in ["awaiting_payment", "paid", "shipped"] {
        let next = advanced(&basis.order, to);
        let entry = entry_for(&basis.order, &next, Outcome::Transitioned);
        let revision = recorded(record_next(store, &basis, &next, &entry).await);
        basis = basis.advanced(next, &entry, revision);
        expected.push(entry);
    }
    let stored = load(store, order.id).await.expect("stored");
    assert_eq!(stored.order, basis.order);
    // A set in Cassandra: compared in any order.
    let (mut stored_ids, mut kept_ids) = (stored.recorded_events.clone(), basis.recorded_events);
    stored_ids.sort();
    kept_ids.sort();
    assert_eq!(stored_ids, kept_ids);
    assert_eq!(history(store, order.id).await, expected);

    // And from a state read back.
    let next = advanced(&stored.order, "delivered");
    let entry = entry_for(&stored.order, &next, Outcome::Transitioned);
    recorded(record_next(store, &stored, &next, &entry).await);
    expected.push(entry);
    assert_eq!(load(store, order.id).await.expect("stored").order, next);
    assert_eq!(history(store, order.id).await, expected);
}

/// A redelivered event decided again on the same state, or a second worker deciding it
/// alike: one history entry, one recorded event id, the same state.
async fn recording_the_next_event_twice_leaves_one_entry(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    bounded(
        "storing the accepted order",
        store.store_accepted_order(&order),
    )
    .await
    .expect("store accepted");
    let basis = load(store, order.id).await.expect("accepted order");
    let next = advanced(&order, "processed");
    let entry = entry_for(&order, &next, Outcome::Transitioned);
    recorded(record_next(store, &basis, &next, &entry).await);
    // The embedded store sees the basis is stale; Cassandra writes the same cells again.
    record_next(store, &basis, &next, &entry).await;

    let stored = load(store, order.id).await.expect("stored");
    assert_eq!(stored.order, next);
    assert_eq!(stored.recorded_events, vec![entry.event_id]);
    assert_eq!(history(store, order.id).await, vec![entry]);
}

/// A zombie worker replaying an older event after the order moved on: whatever it writes,
/// the newer state stays and the history keeps one entry per step.
async fn a_replayed_older_event_never_replaces_a_newer_state(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    bounded(
        "storing the accepted order",
        store.store_accepted_order(&order),
    )
    .await
    .expect("store accepted");
    let first_basis = load(store, order.id).await.expect("accepted order");
    let first = advanced(&order, "awaiting_payment");
    let first_entry = entry_for(&order, &first, Outcome::Transitioned);
    let revision = recorded(record_next(store, &first_basis, &first, &first_entry).await);
    let second_basis = first_basis.advanced(first.clone(), &first_entry, revision);
    let second = advanced(&first, "paid");
    let second_entry = entry_for(&first, &second, Outcome::Transitioned);
    recorded(record_next(store, &second_basis, &second, &second_entry).await);

    record_next(store, &first_basis, &first, &first_entry).await;

    let stored = load(store, order.id).await.expect("stored");
    assert_eq!(stored.order, second);
    let mut ids = stored.recorded_events.clone();
    ids.sort();
    let mut expected = vec![first_entry.event_id, second_entry.event_id];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(
        history(store, order.id).await,
        vec![first_entry, second_entry]
    );
}

/// Records filed under a customer come back newest first, page by page, only that customer's
/// and only that pipeline's; filing the same record twice lists it once.
async fn a_customers_records_page_newest_first(stores: &Stores) {
    let store = stores.orders.as_ref();
    // A customer no other test run uses, so the list holds only this test's records.
    let customer = format!("cust-{}", Uuid::new_v4());
    let mut created = Vec::new();
    for n in 0..5i64 {
        let mut order = new_order();
        order.request.customer = Some(customer.clone());
        order.created_at_ms = 1_700_000_000_000 + n * 1_000;
        assert!(
            bounded("creating", store.create_order(&order))
                .await
                .expect("create")
        );
        created.push(order);
    }
    // The API and the worker both file the accepted record: still one entry.
    bounded("storing again", store.store_accepted_order(&created[4]))
        .await
        .expect("store accepted");
    let mut other = new_order();
    other.request.customer = Some(format!("cust-{}", Uuid::new_v4()));
    bounded("creating", store.create_order(&other))
        .await
        .expect("create");
    let mut invoice = Order::in_pipeline("invoices", Uuid::new_v4(), created[0].request.clone(), 0);
    invoice.created_at_ms = 1_800_000_000_000;
    bounded("creating", store.create_order(&invoice))
        .await
        .expect("create");

    let first = bounded(
        "listing",
        store.customer_records("orders", &customer, None, 2),
    )
    .await
    .expect("list");
    let ids: Vec<Uuid> = first.iter().map(|key| key.id).collect();
    assert_eq!(ids, vec![created[4].id, created[3].id]);
    assert_eq!(first[0].created_at_ms, created[4].created_at_ms);
    let second = bounded(
        "listing",
        store.customer_records("orders", &customer, first.last().copied(), 10),
    )
    .await
    .expect("list");
    let ids: Vec<Uuid> = second.iter().map(|key| key.id).collect();
    assert_eq!(ids, vec![created[2].id, created[1].id, created[0].id]);
    let invoices = bounded(
        "listing",
        store.customer_records("invoices", &customer, None, 10),
    )
    .await
    .expect("list");
    assert_eq!(
        invoices.iter().map(|key| key.id).collect::<Vec<_>>(),
        vec![invoice.id]
    );
    let nobody = bounded(
        "listing",
        store.customer_records("orders", "nobody-at-all", None, 10),
    )
    .await
    .expect("list");
    assert!(nobody.is_empty());
}

async fn a_record_keeps_its_pipeline(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    assert_eq!(order.pipeline, "orders", "Order::new makes an order");
    let invoice = Order::in_pipeline("invoices", Uuid::new_v4(), order.request.clone(), 0);
    bounded("creating", store.create_order(&invoice))
        .await
        .expect("create");
    assert_eq!(
        load(store, invoice.id).await.expect("stored").order,
        invoice
    );
    let issued = advanced(&invoice, "issued");
    let entry = entry_for(&invoice, &issued, Outcome::Transitioned);
    assert_eq!(record(store, &issued, 0, &entry).await, Applied::Yes);
    let stored = load(store, invoice.id).await.expect("stored").order;
    assert_eq!(stored.pipeline, "invoices");
    assert_eq!(stored, issued);
}

async fn create_order_is_if_not_exists(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    assert!(
        bounded("creating", store.create_order(&order))
            .await
            .expect("create")
    );
    let mut other = order.clone();
    other.status = "something else".into();
    other.request.customer = Some("grace".into());
    assert!(
        !bounded("creating again", store.create_order(&other))
            .await
            .expect("create again"),
        "a second create replaced the order"
    );
    assert_eq!(load(store, order.id).await.expect("stored").order, order);
}

async fn an_accepted_order_never_replaces_what_is_stored(stores: &Stores) {
    let store = stores.orders.as_ref();
    // Stored by the API first: found as accepted, then advanced by the worker as usual.
    let order = new_order();
    bounded("accepting", store.store_accepted_order(&order))
        .await
        .expect("accept");
    assert_eq!(load(store, order.id).await.expect("stored").order, order);
    let next = advanced(&order, "awaiting_payment");
    let entry = entry_for(&order, &next, Outcome::Transitioned);
    assert_eq!(record(store, &next, 0, &entry).await, Applied::Yes);
    assert_eq!(load(store, order.id).await.expect("stored").order, next);

    // Stored (and advanced) by the worker first: the API's late write changes nothing.
    let order = new_order();
    bounded("creating", store.create_order(&order))
        .await
        .expect("create");
    let next = advanced(&order, "awaiting_payment");
    let entry = entry_for(&order, &next, Outcome::Transitioned);
    assert_eq!(record(store, &next, 0, &entry).await, Applied::Yes);
    bounded("accepting late", store.store_accepted_order(&order))
        .await
        .expect("accept late");
    let stored = load(store, order.id).await.expect("stored");
    assert_eq!(
        stored.order, next,
        "the late accepted write replaced the order"
    );
    assert_eq!(stored.recorded_events, vec![entry.event_id]);
    // And a worker's create after the API's write keeps the API's order.
    let order = new_order();
    bounded("accepting", store.store_accepted_order(&order))
        .await
        .expect("accept");
    assert!(
        !bounded("creating after", store.create_order(&order))
            .await
            .expect("create after"),
        "the order was already stored"
    );
}

async fn load_order_returns_what_was_stored(stores: &Stores) {
    let store = stores.orders.as_ref();
    assert!(load(store, Uuid::new_v4()).await.is_none(), "unknown order");
    let order = new_order();
    bounded("creating", store.create_order(&order))
        .await
        .expect("create");
    let stored = load(store, order.id).await.expect("stored");
    assert_eq!(stored.order, order);
    assert!(stored.recorded_events.is_empty());
}

async fn record_event_applies_only_at_the_expected_version(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    bounded("creating", store.create_order(&order))
        .await
        .expect("create");

    let winner = advanced(&order, "awaiting_payment");
    let winning_entry = entry_for(&order, &winner, Outcome::Transitioned);
    assert_eq!(
        record(store, &winner, 0, &winning_entry).await,
        Applied::Yes
    );

    // A second event decided on the same (now stale) version loses and changes nothing.
    let loser = advanced(&order, "rejected");
    let losing_entry = entry_for(&order, &loser, Outcome::Transitioned);
    assert_eq!(
        record(store, &loser, 0, &losing_entry).await,
        Applied::VersionConflict
    );

    let stored = load(store, order.id).await.expect("stored");
    assert_eq!(stored.order, winner);
    assert_eq!(stored.recorded_events, vec![winning_entry.event_id]);
    assert_eq!(history(store, order.id).await, vec![winning_entry.clone()]);

    // The next event, at the current version, applies.
    let next = advanced(&winner, "paid");
    let next_entry = entry_for(&winner, &next, Outcome::Transitioned);
    assert_eq!(record(store, &next, 1, &next_entry).await, Applied::Yes);
    let stored = load(store, order.id).await.expect("stored");
    assert_eq!(stored.order, next);
    let mut recorded = stored.recorded_events.clone();
    recorded.sort();
    let mut expected = vec![winning_entry.event_id, next_entry.event_id];
    expected.sort();
    assert_eq!(recorded, expected);
}

async fn record_event_for_an_unknown_order_conflicts(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    let updated = advanced(&order, "processed");
    let entry = entry_for(&order, &updated, Outcome::Transitioned);
    assert_eq!(
        record(store, &updated, 0, &entry).await,
        Applied::VersionConflict
    );
    assert!(load(store, order.id).await.is_none(), "an order appeared");
}

async fn concurrent_record_events_at_one_version_apply_once(stores: &Stores) {
    let order = new_order();
    bounded("creating", stores.orders.create_order(&order))
        .await
        .expect("create");
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..8 {
        let store = stores.orders.clone();
        let updated = advanced(&order, &format!("racer_{n}"));
        let entry = entry_for(&order, &updated, Outcome::Transitioned);
        tasks.spawn(async move {
            let applied = store
                .record_event(&updated, 0, &entry)
                .await
                .expect("record");
            (applied, updated, entry)
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = bounded("racing writers", tasks.join_next()).await {
        let (applied, updated, entry) = result.expect("task");
        if applied == Applied::Yes {
            winners.push((updated, entry));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer wins");
    let (updated, entry) = winners.remove(0);
    let stored = load(stores.orders.as_ref(), order.id)
        .await
        .expect("stored");
    assert_eq!(stored.order, updated);
    assert_eq!(stored.recorded_events, vec![entry.event_id]);
    assert_eq!(history(stores.orders.as_ref(), order.id).await, vec![entry]);
}

async fn history_is_oldest_first(stores: &Stores) {
    let store = stores.orders.as_ref();
    let mut order = new_order();
    bounded("creating", store.create_order(&order))
        .await
        .expect("create");
    assert!(history(store, order.id).await.is_empty());
    let mut expected = Vec::new();
    for (to, outcome) in [
        ("awaiting_payment", Outcome::Transitioned),
        ("awaiting_payment", Outcome::Rejected),
        ("awaiting_payment", Outcome::Failed),
        ("paid", Outcome::Transitioned),
    ] {
        let next = advanced(&order, to);
        let entry = entry_for(&order, &next, outcome);
        assert_eq!(
            record(store, &next, order.version, &entry).await,
            Applied::Yes
        );
        expected.push(entry);
        order = next;
    }
    assert_eq!(history(store, order.id).await, expected);
}

async fn history_pages_follow_the_sequence(stores: &Stores) {
    let store = stores.orders.as_ref();
    let mut order = new_order();
    bounded("creating", store.create_order(&order))
        .await
        .expect("create");
    let page = |after: u64, limit: usize| {
        bounded("reading a page", store.history_page(order.id, after, limit))
    };
    assert!(page(0, 10).await.expect("page").is_empty());
    let mut expected = Vec::new();
    for n in 0..7 {
        let next = advanced(&order, &format!("step{n}"));
        let entry = entry_for(&order, &next, Outcome::Transitioned);
        assert_eq!(
            record(store, &next, order.version, &entry).await,
            Applied::Yes
        );
        expected.push(entry);
        order = next;
    }
    let order = order;
    let page = |after: u64, limit: usize| {
        bounded("reading a page", store.history_page(order.id, after, limit))
    };
    assert_eq!(page(0, 3).await.expect("page"), expected[0..3]);
    assert_eq!(page(3, 3).await.expect("page"), expected[3..6]);
    assert_eq!(page(6, 3).await.expect("page"), expected[6..7]);
    assert!(page(7, 3).await.expect("page").is_empty());
    assert_eq!(page(2, 100).await.expect("page"), expected[2..]);
    assert_eq!(page(0, 1).await.expect("page"), expected[0..1]);
    assert_eq!(history(store, order.id).await, expected);
}

async fn project_status_and_ping_answer(stores: &Stores) {
    let store = stores.orders.as_ref();
    let order = new_order();
    let newer = advanced(&order, "processed");
    for projection in [&newer, &order, &newer] {
        bounded("projecting", store.project_status(projection))
            .await
            .expect("project_status");
    }
    bounded("ping", store.ping()).await.expect("ping");
}

async fn an_idempotency_key_is_claimed_once(stores: &Stores) {
    let store = stores.orders.as_ref();
    let key = format!("conformance-{}", Uuid::new_v4());
    let first = Uuid::new_v4();
    assert_eq!(
        bounded(
            "claiming",
            store.claim_idempotency_key(&key, first, "hash-1")
        )
        .await
        .expect("claim"),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        bounded(
            "claiming again",
            store.claim_idempotency_key(&key, Uuid::new_v4(), "hash-2")
        )
        .await
        .expect("claim again"),
        IdempotencyClaim::Existing {
            order_id: first,
            request_hash: "hash-1".into()
        }
    );
}
