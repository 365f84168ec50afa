/**
 * The component's side of the SDK: binds the WIT imports as the host and turns an
 * {@link OrderPlugin} into the world's exports. Import it only from the module that
 * componentize-js builds (it imports `orderpipe:plugin/*`, which exists only inside the host):
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

setHost({ store, cache, log, clock });

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
    decide: (order, event) => logThrown('decide', () => plugin.decide(order, event)),
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
