/**
 * The `payment_received` event: `{"amount": number, "payment_id": optional string}`.
 *
 * A payment that covers the order's total pays an order awaiting payment. A payment id is
 * honoured once: the cache remembers which event used it (`payment:<id>` → event id, for a
 * day), so the same id on another event is a duplicate, while a redelivery of the same event
 * goes through again. If that check cannot be made (the cache fails) the payment is rejected
 * with the host's reason; the client may post it again.
 *
 * The check and the claim are two cache calls, not one atomic step: two events racing with
 * the same payment id could both pass. The host's WIT has no set-if-absent to close that.
 */
import {
  type Decision,
  type Event,
  type Order,
  cache,
  eventData,
  isJsonObject,
  log,
  orderAttribute,
  reject,
  transition,
} from '@orderpipe/plugin-sdk';

import { hostReason, orderTotal } from './created.js';
import { fixed2, roundHalfAwayFromZero } from './format.js';
import { AWAITING_PAYMENT, PAID } from './status.js';

/** How long a payment id stays claimed, in seconds. */
export const PAYMENT_ID_TTL_SECONDS = 86_400;

/** A payment as the client sent it. */
interface Payment {
  amount: number;
  id: string | undefined;
}

export function decidePayment(order: Order, event: Event): Decision {
  if (order.status !== AWAITING_PAYMENT) {
    return reject(`payment not expected in status ${order.status}`);
  }
  const payment = parse(event);
  if (typeof payment === 'string') {
    return reject(payment);
  }
  const total = totalDue(order);
  if (cents(payment.amount) < cents(total)) {
    return reject(
      `amount ${fixed2(payment.amount)} is less than the order total ${fixed2(total)}`,
    );
  }
  if (payment.id !== undefined) {
    const refused = claim(payment.id, event.id);
    if (refused !== undefined) {
      return reject(refused);
    }
  }
  const by = payment.id === undefined ? '' : ` (${payment.id})`;
  log.info(`payment${by} of ${fixed2(payment.amount)} received for a total of ${fixed2(total)}`);
  const attributes: Record<string, unknown> = { paid_amount: payment.amount };
  if (payment.id !== undefined) {
    attributes.payment_id = payment.id;
  }
  return transition(PAID, `payment${by} of ${fixed2(payment.amount)} received`, attributes);
}

/** The payment, or the reason it cannot be read. */
function parse(event: Event): Payment | string {
  let data: unknown;
  try {
    data = eventData(event);
  } catch (error) {
    return `payment data is not valid JSON: ${(error as Error).message}`;
  }
  if (!isJsonObject(data)) {
    return 'payment data must be a JSON object';
  }
  const amount = data.amount;
  if (amount === undefined || amount === null) {
    return 'payment has no amount';
  }
  if (typeof amount !== 'number') {
    return `amount must be a number, got ${JSON.stringify(amount)}`;
  }
  if (!Number.isFinite(amount)) {
    // JSON.parse reads 1e400 as Infinity, where Rust's JSON parser refuses it.
    return 'payment data is not valid JSON: number out of range';
  }
  const id = data.payment_id;
  if (id === undefined || id === null) {
    return { amount, id: undefined };
  }
  if (typeof id === 'string' && id.trim() !== '') {
    return { amount, id };
  }
  return `payment_id must be a non-empty string, got ${JSON.stringify(id)}`;
}

/** The order's total: the `total` attribute set when it was priced, else recomputed. */
function totalDue(order: Order): number {
  let total: unknown;
  try {
    total = orderAttribute(order, 'total');
  } catch (error) {
    return recomputed(order, (error as Error).message);
  }
  if (total === undefined) {
    return orderTotal(order.items);
  }
  if (typeof total !== 'number') {
    return recomputed(order, `${JSON.stringify(total)} is not a number`);
  }
  return total;
}

function recomputed(order: Order, why: string): number {
  log.warn(`order attribute total is not a number (${why}); recomputing it from the items`);
  return orderTotal(order.items);
}

/**
 * Amounts compare in whole cents, so 12.499999 pays 12.50 but 12.49 does not. Like Rust's
 * `as i64`, NaN counts as 0 and the cents saturate at ±2^63.
 */
function cents(amount: number): number {
  const rounded = roundHalfAwayFromZero(amount * 100);
  if (Number.isNaN(rounded)) {
    return 0;
  }
  return Math.max(-(2 ** 63), Math.min(2 ** 63, rounded));
}

/** Claims `paymentId` for `eventId`; returns why the payment must be refused, if it must. */
function claim(paymentId: string, eventId: string): string | undefined {
  const key = `payment:${paymentId}`;
  const unchecked = (error: unknown): string => {
    const reason = hostReason(error);
    log.warn(`payment ${paymentId} could not be checked: ${reason}`);
    return `payment ${paymentId} could not be checked for duplicates: ${reason}`;
  };
  let owner: string | undefined;
  try {
    owner = cache.get(key);
  } catch (error) {
    return unchecked(error);
  }
  if (owner === eventId) {
    log.info(`payment ${paymentId} seen again on its own event ${eventId}: a redelivery`);
    return undefined;
  }
  if (owner !== undefined) {
    log.warn(`payment ${paymentId} was already used by event ${owner}`);
    return `duplicate payment ${paymentId}`;
  }
  try {
    cache.set(key, eventId, PAYMENT_ID_TTL_SECONDS);
  } catch (error) {
    return unchecked(error);
  }
  return undefined;
}
