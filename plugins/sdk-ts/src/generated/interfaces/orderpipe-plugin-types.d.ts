declare module 'orderpipe:plugin/types@0.1.0' {
  /**
   * A key/value pair. In `order.attributes` and `transition.attributes` the value
   * is JSON text (a string attribute is `"\"blue\""`, a number `"12.5"`).
   */
  export interface Attribute {
    key: string,
    value: string,
  }
  /**
   * One line of an order, as the API client sent it.
   */
  export interface LineItem {
    sku: string,
    qty: bigint,
    unitPrice: number,
  }
  /**
   * The order as the host stores it.
   */
  export interface Order {
    /**
     * The order id, a UUID in its hyphenated text form.
     */
    id: string,
    /**
     * The current status; new orders enter the pipeline as `created`.
     */
    status: string,
    /**
     * How many events the host has recorded for this order so far.
     */
    version: bigint,
    customer?: string,
    items: Array<LineItem>,
    currency?: string,
    /**
     * Free-form attributes: the client's, plus any a plugin set on a transition.
     */
    attributes: Array<Attribute>,
    /**
     * The order body exactly as the client posted it (JSON text, `{}` when empty).
     */
    body: string,
  }
  /**
   * What happened to the order.
   */
  export interface Event {
    /**
     * Unique per event; a redelivered event carries the same id.
     */
    id: string,
    /**
     * `created` for the order itself, otherwise the type the client posted,
     * e.g. `payment_received`, `shipped`, `cancel_requested`.
     */
    kind: string,
    /**
     * The event's data as JSON text (`{}` when there is none).
     */
    data: string,
    /**
     * When the host accepted the event, in milliseconds since the Unix epoch.
     */
    atMs: bigint,
  }
  /**
   * Move the order to another status.
   */
  export interface Transition {
    to: string,
    reason: string,
    /**
     * Attributes to set on the order (value is JSON text), e.g. a computed total.
     */
    attributes: Array<Attribute>,
  }
  /**
   * What the plugin decided.
   */
  export type Decision = DecisionTransition | DecisionNoChange | DecisionReject;
  /**
   * Move the order to a new status (must be an allowed edge of the state machine).
   */
  export interface DecisionTransition {
    tag: 'transition',
    val: Transition,
  }
  /**
   * Accept the event but keep the status; the string is the reason, for the history.
   */
  export interface DecisionNoChange {
    tag: 'no-change',
    val: string,
  }
  /**
   * Refuse the event; the status is unchanged and the reason is recorded.
   */
  export interface DecisionReject {
    tag: 'reject',
    val: string,
  }
  /**
   * An allowed edge of the state machine.
   */
  export interface Edge {
    from: string,
    to: string,
  }
  /**
   * The plugin's state machine. `initial` must be `created` for order pipelines.
   */
  export interface StateMachine {
    states: Array<string>,
    initial: string,
    transitions: Array<Edge>,
  }
  /**
   * What a plugin says about itself.
   */
  export interface PluginInfo {
    name: string,
    version: string,
    stateMachine: StateMachine,
  }
  /**
   * Why a host function failed. Expected failures are values, never traps.
   */
  export type HostError = HostErrorInvalid | HostErrorQuotaExceeded | HostErrorUnavailable;
  /**
   * The request was refused: a key, table or value too large, or malformed. A write
   * refused as too large also fails the event, whatever the plugin decides after it.
   */
  export interface HostErrorInvalid {
    tag: 'invalid',
    val: string,
  }
  /**
   * The plugin made more host calls than its quota for one invocation allows.
   */
  export interface HostErrorQuotaExceeded {
    tag: 'quota-exceeded',
    val: string,
  }
  /**
   * The backend did not answer; the host may retry the whole event later.
   */
  export interface HostErrorUnavailable {
    tag: 'unavailable',
    val: string,
  }
}
