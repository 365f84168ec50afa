/**
 * The contract's types, generated from `wit/plugin.wit` by jco into `src/generated/`
 * (`npm run generate`). Everything else in the SDK speaks these types; nothing here adds to
 * or changes what crosses the boundary.
 *
 * As jco maps WIT: records are objects with camelCase fields, `u64`/`s64` are `bigint`
 * (`order.version`, `event.atMs`, `item.qty`), `option<T>` is `T | undefined`, and a variant
 * is `{ tag, val }` (`{ tag: 'transition', val: { to, reason, attributes } }`).
 */
/// <reference path="./generated/order-plugin.d.ts" preserve="true" />

export type {
  Attribute,
  Decision,
  DecisionNoChange,
  DecisionReject,
  DecisionTransition,
  Edge,
  Event,
  HostError as WitHostError,
  LineItem,
  Order,
  PluginInfo,
  StateMachine,
  Transition,
} from 'orderpipe:plugin/types@0.1.0';
export type { Level } from 'orderpipe:plugin/log@0.1.0';

import type { Decision, Event, Order, PluginInfo } from 'orderpipe:plugin/types@0.1.0';

/** What a plugin implements: describe itself, and decide on events. */
export interface OrderPlugin {
  /** The plugin's name, version and state machine. Called once when the host loads it. */
  describe(): PluginInfo;
  /**
   * What `event` means for `order`. A transition must follow an edge of the state machine
   * from `order.status`, or the host refuses it. Every event runs on a fresh instance unless
   * the operator opts the plugin into reuse: keep what must last in `store` or `cache`.
   */
  decide(order: Order, event: Event): Decision;
}
