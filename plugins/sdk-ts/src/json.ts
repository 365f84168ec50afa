/**
 * Reading the JSON that orders and events carry: `event.data`, `order.attributes` values,
 * `order.body`. Broken JSON throws `SyntaxError`; decide whether that is a reject.
 */
import { findAttribute } from './decision.js';
import type { Event, Order } from './types.js';

/** The event's data parsed from its JSON; empty data reads as `{}`. */
export function eventData(event: Event): unknown {
  return JSON.parse(event.data.trim() === '' ? '{}' : event.data);
}

/** An attribute's JSON text as stored; the last one wins if the key repeats. */
export function orderAttributeRaw(order: Order, key: string): string | undefined {
  return findAttribute(order.attributes, key);
}

/** An attribute parsed from its JSON; `undefined` when the order has no such attribute. */
export function orderAttribute(order: Order, key: string): unknown {
  const raw = orderAttributeRaw(order, key);
  return raw === undefined ? undefined : JSON.parse(raw);
}

/** Whether `value` is a JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
