// One order, live: its status (announced to screen readers as it changes), its items, and
// the timeline of its history showing which plugin version decided each step and why.
//
// The history is read first, then the order's stream is followed from the last version
// read (Last-Event-ID), so nothing recorded in between is missed, after a reload too.

import { useEffect, useState } from "react";
import { ApiProblem, type HistoryEntry, type OrderApi, type OrderView } from "./api";
import { followStream, type StreamState } from "./sse";
import { StatusBadge } from "./StatusBadge";

type EntryChange = { status: string; version: number; entry: HistoryEntry };

const STREAM_STATE_TEXT: Record<StreamState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  closed: "Not following",
};

export function OrderPage({ api, orderId }: { api: OrderApi; orderId: string }) {
  const [order, setOrder] = useState<OrderView | null>(null);
  const [entries, setEntries] = useState<HistoryEntry[]>([]);
  const [streamState, setStreamState] = useState<StreamState>("connecting");
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    let stop: (() => void) | null = null;
    let active = true;
    const addEntry = (entry: HistoryEntry) =>
      setEntries((current) =>
        current.some((known) => known.seq === entry.seq)
          ? current
          : [...current, entry].sort((a, b) => a.seq - b.seq),
      );
    (async () => {
      const history = await api.history(orderId);
      const view = await api.order(orderId);
      if (!active) return;
      setEntries(history);
      setOrder(view);
      const lastRead = history.reduce((last, entry) => Math.max(last, entry.seq), 0);
      stop = followStream({
        path: api.orderStreamPath(orderId),
        headers: () => api.headers(),
        lastEventId: String(lastRead),
        onState: (state, detail) => {
          setStreamState(state);
          if (detail) setProblem(detail);
        },
        onEvent: (event) => {
          if (event.event === "entry") {
            const change = JSON.parse(event.data) as EntryChange;
            addEntry(change.entry);
            setOrder((current) =>
              current && change.version > current.version
                ? { ...current, status: change.status, version: change.version }
                : current,
            );
          } else if (event.event === "status") {
            const view = JSON.parse(event.data) as OrderView;
            setOrder((current) => (current && view.version < current.version ? current : view));
          }
        },
      });
    })().catch((error) => {
      setProblem(error instanceof ApiProblem && error.status === 404 ? "No such order." : String(error.message ?? error));
      setStreamState("closed");
    });
    return () => {
      active = false;
      stop?.();
    };
  }, [api, orderId]);

  return (
    <>
      <p>
        <a href="#/">← My orders</a>
      </p>
      <section aria-labelledby="order-title" className="card">
        <h1 id="order-title">Order {orderId.slice(0, 8)}</h1>
        <p className="muted order-full-id">{orderId}</p>
        {problem && (
          <p role="alert" className="problem">
            {problem}
          </p>
        )}
        {order && (
          <>
            <p className="status-line" role="status" aria-live="polite" aria-atomic="true">
              Status: <strong data-testid="order-status">{order.status}</strong>
            </p>
            <p className="muted">
              <span className={`dot dot-${streamState}`} aria-hidden="true" />
              <span data-testid="stream-state">{STREAM_STATE_TEXT[streamState]}</span>
            </p>
            <h2>Items</h2>
            <table className="items">
              <caption className="visually-hidden">Items of this order</caption>
              <thead>
                <tr>
                  <th scope="col">SKU</th>
                  <th scope="col">Qty</th>
                  <th scope="col">Unit price</th>
                </tr>
              </thead>
              <tbody>
                {order.items.map((item, index) => (
                  <tr key={index}>
                    <td>{item.sku}</td>
                    <td>{item.qty}</td>
                    <td>
                      {item.unit_price.toFixed(2)} {order.currency ?? ""}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>
      <section aria-labelledby="history-title" className="card">
        <h2 id="history-title">History</h2>
        {entries.length === 0 && <p className="muted">Nothing decided yet.</p>}
        <ol className="timeline" aria-label="History of this order" data-testid="timeline">
          {entries.map((entry) => (
            <li key={entry.seq} data-testid="timeline-entry">
              <div className="timeline-head">
                <span className="event-type">{entry.event_type}</span>
                <StatusBadge status={entry.to} />
              </div>
              <p>
                {entry.from ? `${entry.from} → ${entry.to}` : entry.to}
                {entry.outcome && entry.outcome !== "transitioned" ? ` (${entry.outcome})` : ""}
              </p>
              {entry.reason && <p className="reason">Why: {entry.reason}</p>}
              <p className="muted">
                Decided by{" "}
                <span data-testid="decided-by">
                  {entry.plugin ? `${entry.plugin} v${entry.plugin_version ?? "?"}` : "the host"}
                </span>{" "}
                · <time dateTime={entry.at}>{new Date(entry.at).toLocaleString()}</time>
              </p>
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}
