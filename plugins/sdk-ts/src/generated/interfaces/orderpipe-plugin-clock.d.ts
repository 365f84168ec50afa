declare module 'orderpipe:plugin/clock@0.1.0' {
  /**
   * Milliseconds since the Unix epoch: the event's `at-ms` while deciding it, the host's
   * current time during `describe`.
   */
  export function nowMs(): bigint;
}
