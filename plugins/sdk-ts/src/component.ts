/**
 * The component's side of the SDK: binds the WIT imports as the host and turns an
 * {@link OrderPlugin} into the world's exports. Import it only from the module that
 * jco componentizes (it imports `orderpipe:plugin/*`, which exists only inside the host):
 *
 * ```ts
 * import { exportPlugin } from '@orderpipe/plugin-sdk/component';
 * import { plugin } from './plugin.js';
 * export const { describe, decide } = exportPlugin(plugin);
 * ```
 */
import * as cache from 'orderpipe:plugin/cache@0.1.0';
import * as clock from 'orderpipe:plugin/clock@0.1.0';
import * as log from 'orderpipe:plugin/log@0.1.0';
import * as store from 'orderpipe:plugin/store@0.1.0';

import { setHost } from './host.js';
import type { Decision, Event, Order, OrderPlugin, PluginInfo } from './types.js';

/**
 * How the engine's bindings carry WIT values: componentize-js (StarlingMonkey) gives `u64`/`s64`
 * as `bigint` and a missing `option` as `undefined`, as the SDK's types say; componentize-qjs
 * (QuickJS) gives numbers and `null`. Seen on each order the host passes in (its `version` is
 * a `u64`): with numbers, the order and event reach the plugin in the SDK's forms, and
 * `cache.incr`'s delta goes out as a number (exact up to 2^53). Options read from the host
 * are `undefined` when missing, whatever the engine.
 */
let int64AsNumber = false;

setHost({
  store: {
    get: (table, key) => store.get(table, key) ?? undefined,
    put: (table, key, value) => store.put(table, key, value),
    delete: (table, key) => store.delete(table, key),
  },
  cache: {
    get: (key) => cache.get(key) ?? undefined,
    set: (key, value, ttlSeconds) => cache.set(key, value, ttlSeconds),
    delete: (key) => cache.delete(key),
    incr: (key, delta) =>
      BigInt(cache.incr(key, (int64AsNumber ? Number(delta) : delta) as bigint)),
  },
  log,
  clock: { nowMs: () => BigInt(clock.nowMs()) },
});

function withBigInts(order: Order, event: Event): [Order, Event] {
  int64AsNumber = typeof order.version === 'number';
  if (!int64AsNumber) {
    return [order, event];
  }
  return [
    {
      ...order,
      customer: order.customer ?? undefined,
      currency: order.currency ?? undefined,
      version: BigInt(order.version),
      items: order.items.map((item) => ({ ...item, qty: BigInt(item.qty) })),
    },
    { ...event, atMs: BigInt(event.atMs) },
  ];
}

/**
 * The world's exports for `plugin`. An exception thrown by `describe` or `decide` traps (the
 * host records the event as failed); its message and stack are sent to the host's log first,
 * so the reason is not lost. Expected failures belong in a `reject`, never a throw.
 */
export function exportPlugin(plugin: OrderPlugin): {
  describe(): PluginInfo;
  decide(order: Order, event: Event): Decision;
} {
  return {
    describe: () => logThrown('describe', () => plugin.describe()),
    decide: (order, event) =>
      logThrown('decide', () => plugin.decide(...withBigInts(order, event))),
  };
}

function logThrown<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (error) {
    // The message first: SpiderMonkey's `stack` holds only the frames, and the host shows a
    // log line's beginning.
    const text = error instanceof Error ? `${String(error)}\n${error.stack ?? ''}` : String(error);
    log.log('error', `plugin threw in ${what}: ${text}`);
    throw error;
  }
}
