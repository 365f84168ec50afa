/**
 * Unit-test support: an in-memory stand-in for the host, and builders for orders and events.
 * Runs under plain Node (`node --test`), no component needed:
 *
 * ```ts
 * const host = FakeHost.install();
 * host.cacheSet('seen', 'yes');
 * assert.equal(cache.get('seen'), 'yes');
 * host.failWith({ tag: 'unavailable', val: 'redis is down' });
 * assert.throws(() => cache.get('seen'), HostError);
 * ```
 *
 * Failures are thrown as jco's bindings throw them (an error whose `payload` is the WIT
 * `host-error`), so a test goes through the same conversion as the component does.
 */
import { type Host, setHost } from './host.js';
import type { Event, LineItem, Level, Order, WitHostError } from './types.js';

/** The fake clock's time until a test sets another: 2023-11-14T22:13:20Z. */
export const DEFAULT_NOW_MS = 1_700_000_000_000n;

/** The fake host: seed it, make it fail, and look at what the plugin did. */
export class FakeHost {
  private store = new Map<string, string>();
  private cache = new Map<string, { value: string; ttlSeconds: number | undefined }>();
  private lines: Array<{ level: Level; message: string }> = [];
  private callCount = 0;
  private quota: number | undefined;
  private failure: WitHostError | undefined;
  private nowMs = DEFAULT_NOW_MS;

  /** A new, empty fake host, bound as the host the SDK's functions call. */
  static install(): FakeHost {
    const host = new FakeHost();
    setHost(host.asHost());
    return host;
  }

  /** Makes every later store and cache call fail with `error` (it still counts as a call). */
  failWith(error: WitHostError): void {
    this.failure = error;
  }

  /** Undoes {@link failWith}. */
  recover(): void {
    this.failure = undefined;
  }

  /** Lets only `calls` store and cache calls succeed; later ones fail with `quota-exceeded`. */
  setQuota(calls: number): void {
    this.quota = calls;
  }

  /** How many store and cache calls the plugin made, failed ones included. */
  calls(): number {
    return this.callCount;
  }

  setNowMs(nowMs: bigint): void {
    this.nowMs = nowMs;
  }

  storeGet(table: string, key: string): string | undefined {
    return this.store.get(rowKey(table, key));
  }

  storePut(table: string, key: string, value: string): void {
    this.store.set(rowKey(table, key), value);
  }

  /** Every row as `[table, key, value]`, sorted. */
  storeRows(): Array<[string, string, string]> {
    return [...this.store.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([row, value]) => {
        const [table, key] = JSON.parse(row) as [string, string];
        return [table, key, value];
      });
  }

  cacheGet(key: string): string | undefined {
    return this.cache.get(key)?.value;
  }

  /** The time to live the plugin gave `key`, if any. The fake never expires anything. */
  cacheTtl(key: string): number | undefined {
    return this.cache.get(key)?.ttlSeconds;
  }

  cacheSet(key: string, value: string): void {
    this.cache.set(key, { value, ttlSeconds: undefined });
  }

  /** Everything logged so far, oldest first. */
  logs(): Array<{ level: Level; message: string }> {
    return [...this.lines];
  }

  /** Whether a line at `level` containing `text` was logged. */
  logged(level: Level, text: string): boolean {
    return this.lines.some((line) => line.level === level && line.message.includes(text));
  }

  private countCall(): void {
    this.callCount += 1;
    if (this.quota !== undefined && this.callCount > this.quota) {
      throw witError({
        tag: 'quota-exceeded',
        val: `host call quota of ${this.quota} per event exceeded`,
      });
    }
    if (this.failure !== undefined) {
      throw witError(this.failure);
    }
  }

  private asHost(): Host {
    return {
      store: {
        get: (table, key) => {
          this.countCall();
          return this.store.get(rowKey(table, key));
        },
        put: (table, key, value) => {
          this.countCall();
          this.store.set(rowKey(table, key), value);
        },
        delete: (table, key) => {
          this.countCall();
          this.store.delete(rowKey(table, key));
        },
      },
      cache: {
        get: (key) => {
          this.countCall();
          return this.cache.get(key)?.value;
        },
        set: (key, value, ttlSeconds) => {
          this.countCall();
          this.cache.set(key, { value, ttlSeconds });
        },
        incr: (key, delta) => {
          this.countCall();
          const entry = this.cache.get(key) ?? { value: '0', ttlSeconds: undefined };
          if (!/^-?\d+$/.test(entry.value)) {
            throw witError({ tag: 'invalid', val: `value of ${key} is not an integer` });
          }
          const next = BigInt(entry.value) + delta;
          if (next > I64_MAX || next < I64_MIN) {
            throw witError({ tag: 'invalid', val: `incrementing ${key} overflows` });
          }
          this.cache.set(key, { value: next.toString(), ttlSeconds: entry.ttlSeconds });
          return next;
        },
        delete: (key) => {
          this.countCall();
          this.cache.delete(key);
        },
      },
      log: {
        log: (level, message) => {
          this.lines.push({ level, message });
        },
      },
      clock: { nowMs: () => this.nowMs },
    };
  }
}

const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);

function rowKey(table: string, key: string): string {
  return JSON.stringify([table, key]);
}

/** A host error thrown the way jco's bindings throw it. */
function witError(error: WitHostError): Error {
  return Object.assign(new Error(`${error.tag}: ${error.val}`), { payload: error });
}

/**
 * A new order in `status` with id `00000000-0000-4000-8000-000000000001`, no customer,
 * items, currency or attributes, and version 1. Change its fields as a test needs.
 */
export function order(status: string): Order {
  return {
    id: '00000000-0000-4000-8000-000000000001',
    status,
    version: 1n,
    customer: undefined,
    items: [],
    currency: undefined,
    attributes: [],
    body: '{}',
  };
}

export function item(sku: string, qty: number | bigint, unitPrice: number): LineItem {
  return { sku, qty: BigInt(qty), unitPrice };
}

/** An event with id `event-1`, accepted at {@link DEFAULT_NOW_MS}. */
export function event(kind: string, data = '{}'): Event {
  return { id: 'event-1', kind, data, atMs: DEFAULT_NOW_MS };
}
