/// <reference path="./orderpipe-plugin-types.d.ts" />
declare module 'orderpipe:plugin/cache@0.1.0' {
  export function get(key: string): string | undefined;
  /**
   * Sets a value; with `ttl-seconds` it expires after that many seconds.
   */
  export function set(key: string, value: string, ttlSeconds: number | undefined): void;
  /**
   * Adds `delta` to an integer value (missing counts as 0) and returns the result.
   */
  export function incr(key: string, delta: bigint): bigint;
  export { _delete as delete };
  function _delete(key: string): void;
  export type HostError = import('orderpipe:plugin/types@0.1.0').HostError;
}
