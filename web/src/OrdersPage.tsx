// My orders: a form for a new order, and the list of mine, newest first, whose statuses
// follow the customer's live stream.

import { useEffect, useState, type FormEvent } from "react";
import { ApiProblem, type LineItem, type OrderApi, type OrderView } from "./api";
import { orderHref } from "./route";
import { followStream } from "./sse";
import { StatusBadge } from "./StatusBadge";

export function OrdersPage({ api }: { api: OrderApi }) {
  return (
    <>
      <NewOrder api={api} />
      <MyOrders api={api} />
    </>
  );
}

type ItemDraft = { sku: string; qty: string; unit_price: string };
const EMPTY_ITEM: ItemDraft = { sku: "", qty: "1", unit_price: "" };

function NewOrder({ api }: { api: OrderApi }) {
  const [items, setItems] = useState<ItemDraft[]>([{ ...EMPTY_ITEM }]);
  const [problem, setProblem] = useState<string | null>(null);
  const [sending, setSending] = useState(false);

  const change = (index: number, field: keyof ItemDraft, value: string) =>
    setItems((current) => current.map((item, i) => (i === index ? { ...item, [field]: value } : item)));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setProblem(null);
    const lines: LineItem[] = items.map((item) => ({
      sku: item.sku.trim(),
      qty: Number(item.qty),
      unit_price: Number(item.unit_price),
    }));
    setSending(true);
    try {
      const id = await api.createOrder(lines);
      window.location.hash = orderHref(id);
    } catch (error) {
      setProblem(error instanceof ApiProblem ? error.message : String(error));
    } finally {
      setSending(false);
    }
  };

  return (
    <section aria-labelledby="new-order-title" className="card">
      <h2 id="new-order-title">New order</h2>
      <form onSubmit={submit}>
        {items.map((item, index) => (
          <fieldset key={index} className="item">
            <legend>Item {index + 1}</legend>
            <div className="field">
              <label htmlFor={`sku-${index}`}>SKU</label>
              <input
                id={`sku-${index}`}
                required
                maxLength={128}
                value={item.sku}
                onChange={(event) => change(index, "sku", event.target.value)}
              />
            </div>
            <div className="field small">
              <label htmlFor={`qty-${index}`}>Quantity</label>
              <input
                id={`qty-${index}`}
                type="number"
                inputMode="numeric"
                min={1}
                step={1}
                required
                value={item.qty}
                onChange={(event) => change(index, "qty", event.target.value)}
              />
            </div>
            <div className="field small">
              <label htmlFor={`price-${index}`}>Unit price</label>
              <input
                id={`price-${index}`}
                type="number"
                inputMode="decimal"
                min={0}
                step="0.01"
                required
                value={item.unit_price}
                onChange={(event) => change(index, "unit_price", event.target.value)}
              />
            </div>
            {items.length > 1 && (
              <button
                type="button"
                className="link"
                aria-label={`Remove item ${index + 1}`}
                onClick={() => setItems((current) => current.filter((_, i) => i !== index))}
              >
                Remove
              </button>
            )}
          </fieldset>
        ))}
        <div className="actions">
          <button type="button" className="secondary" onClick={() => setItems((current) => [...current, { ...EMPTY_ITEM }])}>
            Add item
          </button>
          <button type="submit" disabled={sending}>
            {sending ? "Placing…" : "Place order"}
          </button>
        </div>
        {problem && (
          <p role="alert" className="problem">
            {problem}
          </p>
        )}
      </form>
    </section>
  );
}

function MyOrders({ api }: { api: OrderApi }) {
  const [orders, setOrders] = useState<OrderView[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    api
      .listOrders()
      .then((page) => {
        setOrders(page.records);
        setCursor(page.next_cursor);
      })
      .catch((error: Error) => setProblem(error.message));
    // Live statuses: each entry of any of my orders says the status it left the order in.
    return followStream({
      path: api.customerStreamPath(),
      headers: () => api.headers(),
      onState: () => {},
      onEvent: (event) => {
        if (event.event !== "entry") {
          return;
        }
        const change = JSON.parse(event.data) as { order_id: string; status: string; version: number };
        setOrders((current) =>
          current?.map((order) =>
            order.order_id === change.order_id && change.version > order.version
              ? { ...order, status: change.status, version: change.version }
              : order,
          ) ?? current,
        );
      },
    });
  }, [api]);

  const more = async () => {
    if (!cursor) return;
    const page = await api.listOrders(cursor);
    setOrders((current) => [...(current ?? []), ...page.records]);
    setCursor(page.next_cursor);
  };

  return (
    <section aria-labelledby="my-orders-title" className="card">
      <h2 id="my-orders-title">My orders</h2>
      {problem && (
        <p role="alert" className="problem">
          {problem}
        </p>
      )}
      {orders === null && !problem && <p aria-busy="true">Loading…</p>}
      {orders?.length === 0 && <p>No orders yet.</p>}
      {orders && orders.length > 0 && (
        <ul className="orders" aria-label="My orders">
          {orders.map((order) => (
            <li key={order.order_id}>
              <a href={orderHref(order.order_id)}>
                <span className="order-id">Order {order.order_id.slice(0, 8)}</span>
                <span className="muted">
                  {order.items.length} item{order.items.length === 1 ? "" : "s"} ·{" "}
                  {new Date(order.created_at_ms).toLocaleString()}
                </span>
              </a>
              <StatusBadge status={order.status} />
            </li>
          ))}
        </ul>
      )}
      {cursor && (
        <button type="button" className="secondary" onClick={more}>
          Show older orders
        </button>
      )}
    </section>
  );
}
