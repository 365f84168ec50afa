// The host's order API as the page uses it: every call carries the session's credential.

import type { Session } from "./session";

export interface LineItem {
  sku: string;
  qty: number;
  unit_price: number;
}

/** A record as `GET /api/<pipeline>/<id>` shows it. */
export interface OrderView {
  order_id: string;
  status: string;
  version: number;
  customer?: string;
  items: LineItem[];
  currency?: string;
  created_at_ms: number;
  updated_at_ms: number;
}

/** One step of a record's history: what happened, who decided it and why. */
export interface HistoryEntry {
  seq: number;
  event_id: string;
  event_type: string;
  outcome: string;
  from: string | null;
  to: string;
  at: string;
  reason: string | null;
  plugin: string | null;
  plugin_version: number | string | null;
}

/** An error answer (`{"error": "…"}`) with its status. */
export class ApiProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class OrderApi {
  constructor(
    private readonly pipeline: string,
    private readonly session: Session,
  ) {}

  /** The path of a route of this pipeline. */
  path(suffix = "", query: Record<string, string> = {}): string {
    const params = new URLSearchParams(query);
    const text = params.toString();
    return `/api/${encodeURIComponent(this.pipeline)}${suffix}${text ? `?${text}` : ""}`;
  }

  /** The live stream of one order. */
  orderStreamPath(id: string): string {
    return this.path(`/${encodeURIComponent(id)}/stream`);
  }

  /** The live stream of every order of the session's customer. */
  customerStreamPath(): string {
    return this.path("/stream", this.session.customerQuery());
  }

  async headers(extra: Record<string, string> = {}): Promise<Record<string, string>> {
    return { ...(await this.session.authHeaders()), ...extra };
  }

  private async call<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await fetch(path, {
      ...init,
      headers: await this.headers({ Accept: "application/json", ...(init.headers as Record<string, string>) }),
      cache: "no-store",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new ApiProblem(response.status, body.error ?? `HTTP ${response.status}`);
    }
    return body as T;
  }

  listOrders(cursor?: string): Promise<{ records: OrderView[]; next_cursor: string | null }> {
    const query = { limit: "20", ...(cursor ? { cursor } : {}), ...this.session.customerQuery() };
    return this.call(this.path("", query));
  }

  async createOrder(items: LineItem[]): Promise<string> {
    const body: Record<string, unknown> = { items };
    if (this.session.development) {
      body.customer = this.session.customer;
    }
    const answer = await this.call<Record<string, string>>(this.path(), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return answer.order_id ?? Object.values(answer)[0];
  }

  order(id: string): Promise<OrderView> {
    return this.call(this.path(`/${encodeURIComponent(id)}`));
  }

  /** Every history entry, oldest first (all pages). */
  async history(id: string): Promise<HistoryEntry[]> {
    const entries: HistoryEntry[] = [];
    let cursor: string | null = null;
    do {
      const page: { history: HistoryEntry[]; next_cursor: string | null } = await this.call(
        this.path(`/${encodeURIComponent(id)}/history`, cursor ? { cursor } : {}),
      );
      entries.push(...page.history);
      cursor = page.next_cursor;
    } while (cursor);
    return entries;
  }
}
