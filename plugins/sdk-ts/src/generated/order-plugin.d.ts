/// <reference path="./interfaces/orderpipe-plugin-cache.d.ts" />
/// <reference path="./interfaces/orderpipe-plugin-clock.d.ts" />
/// <reference path="./interfaces/orderpipe-plugin-log.d.ts" />
/// <reference path="./interfaces/orderpipe-plugin-store.d.ts" />
/// <reference path="./interfaces/orderpipe-plugin-types.d.ts" />
declare module 'orderpipe:plugin/order-plugin@0.1.0' {
  export type Order = import('orderpipe:plugin/types@0.1.0').Order;
  export type Event = import('orderpipe:plugin/types@0.1.0').Event;
  export type Decision = import('orderpipe:plugin/types@0.1.0').Decision;
  export type PluginInfo = import('orderpipe:plugin/types@0.1.0').PluginInfo;
  export type * as OrderpipePluginCache010 from 'orderpipe:plugin/cache@0.1.0'; // import orderpipe:plugin/cache@0.1.0
  export type * as OrderpipePluginClock010 from 'orderpipe:plugin/clock@0.1.0'; // import orderpipe:plugin/clock@0.1.0
  export type * as OrderpipePluginLog010 from 'orderpipe:plugin/log@0.1.0'; // import orderpipe:plugin/log@0.1.0
  export type * as OrderpipePluginStore010 from 'orderpipe:plugin/store@0.1.0'; // import orderpipe:plugin/store@0.1.0
  export type * as OrderpipePluginTypes010 from 'orderpipe:plugin/types@0.1.0'; // import orderpipe:plugin/types@0.1.0
  /**
  * Describes the plugin: name, version and state machine. Called once at load.
  */
  export function describe(): PluginInfo;
  /**
  * Decides what `event` means for `order`. Called once per event, on a fresh instance
  * unless the operator opts the plugin into reuse, so nothing kept in memory survives
  * from one order to the next: what must persist goes through `store` or `cache`.
  * The host bounds what comes back (the decision's bytes, attribute count, key and value
  * sizes); a decision over a bound fails the event, with the bound named.
  */
  export function decide(order: Order, event: Event): Decision;
}
