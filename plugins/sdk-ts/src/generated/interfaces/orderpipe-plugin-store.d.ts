/// <reference path="./orderpipe-plugin-types.d.ts" />
declare module 'orderpipe:plugin/store@0.1.0' {
  /**
   * Reads a value, or `none` when the key was never written or was deleted.
   */
  export function get(table: string, key: string): string | undefined;
  /**
   * Writes a value, replacing any earlier one.
   */
  export function put(table: string, key: string, value: string): void;
  /**
   * Deletes a value; deleting a missing key is not an error.
   */
  export { _delete as delete };
  function _delete(table: string, key: string): void;
  export type HostError = import('orderpipe:plugin/types@0.1.0').HostError;
}
