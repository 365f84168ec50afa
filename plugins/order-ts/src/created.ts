/**
 * The `created` event: the order itself has arrived.
 *
 * An order without items is `processed`. An order with items is priced: its total and
 * currency become attributes and it waits for payment. An order that cannot be priced (a bad
 * item, an unknown currency) is `rejected`, every problem named in the reason. An accepted
 * order is also filed under its customer in the store and counted in the cache; neither is
 * allowed to change the decision.
 */
import {
  type Decision,
  HostError,
  type LineItem,
  type Order,
  cache,
  log,
  reject,
  store,
  transition,
} from '@orderpipe/plugin-sdk';

import { display, fixed2, quoted, roundHalfAwayFromZero } from './format.js';
import { AWAITING_PAYMENT, CREATED, PROCESSED, REJECTED } from './status.js';

/** The currency of an order that names none. */
export const DEFAULT_CURRENCY = 'USD';

/** The ISO 4217 codes the workflow prices in. */
export const CURRENCIES = [
  'USD', 'EUR', 'GBP', 'JPY', 'CHF', 'CAD', 'AUD', 'NZD', 'SEK', 'NOK', 'DKK', 'PLN', 'CZK',
  'INR', 'CNY', 'BRL', 'MXN', 'ZAR', 'SGD', 'HKD',
] as const;

/** Store table of accepted orders, keyed `<customer>/<order id>`, valued with the total. */
export const ORDERS_BY_CUSTOMER = 'orders-by-customer';
/**
 * Cache counter of accepted orders. It counts deliveries: a redelivered `created` event
 * counts again, which is fine for a gauge of traffic.
 */
export const ORDERS_CREATED = 'orders-created';
/** The customer key of an order that names no customer. */
export const ANONYMOUS = 'anonymous';

export function decideCreated(order: Order): Decision {
  if (order.status !== CREATED) {
    return reject(`order already created (status ${order.status})`);
  }
  const priced = price(order);
  if (!priced.ok) {
    return transition(REJECTED, priced.problems.join('; '));
  }
  const { total, currency } = priced;
  fileUnderCustomer(order, total);
  if (order.items.length === 0) {
    return transition(PROCESSED, 'order has no items');
  }
  return transition(AWAITING_PAYMENT, `awaiting payment of ${fixed2(total)} ${currency}`, {
    total,
    currency,
  });
}

type Priced = { ok: true; total: number; currency: string } | { ok: false; problems: string[] };

/** The order's total and currency, or every reason it cannot be priced. */
function price(order: Order): Priced {
  const problems: string[] = [];
  let currency = DEFAULT_CURRENCY;
  if (order.currency !== undefined) {
    currency = order.currency.trim().replace(/[a-z]/g, (c) => c.toUpperCase());
    if (!(CURRENCIES as readonly string[]).includes(currency)) {
      problems.push(`unknown currency ${quoted(order.currency)}`);
    }
  }
  order.items.forEach((item, index) => {
    const problem = itemProblem(index + 1, item);
    if (problem !== undefined) {
      problems.push(problem);
    }
  });
  const total = orderTotal(order.items);
  if (problems.length === 0 && !Number.isFinite(total)) {
    problems.push('order total is too large');
  }
  return problems.length === 0 ? { ok: true, total, currency } : { ok: false, problems };
}

/** What is wrong with the `number`th (from 1) item, if anything. */
function itemProblem(number: number, item: LineItem): string | undefined {
  const sku = item.sku.trim();
  if (sku === '') {
    return `item ${number}: sku must not be empty`;
  }
  let problem: string;
  if (item.qty <= 0n) {
    problem = 'qty must be positive';
  } else if (!Number.isFinite(item.unitPrice)) {
    problem = 'unit_price must be a finite number';
  } else if (item.unitPrice < 0) {
    problem = 'unit_price must not be negative';
  } else {
    return undefined;
  }
  return `item ${number} (sku ${sku}): ${problem}`;
}

/** The sum of qty × unit price, rounded to cents. */
export function orderTotal(items: LineItem[]): number {
  const sum = items.reduce((sum, item) => sum + Number(item.qty) * item.unitPrice, 0);
  return roundHalfAwayFromZero(sum * 100) / 100;
}

/**
 * Records the order under its customer and counts it. Bookkeeping only: a host error is
 * logged and does not change the decision.
 */
function fileUnderCustomer(order: Order, total: number): void {
  const customer = order.customer?.trim() || ANONYMOUS;
  try {
    store.put(ORDERS_BY_CUSTOMER, `${customer}/${order.id}`, display(total));
  } catch (error) {
    log.warn(`could not file the order under customer ${customer}: ${hostReason(error)}`);
  }
  try {
    const count = cache.incr(ORDERS_CREATED, 1);
    log.info(`order accepted for ${customer}, total ${fixed2(total)}; ${count} orders so far`);
  } catch (error) {
    log.warn(`could not count the order: ${hostReason(error)}`);
  }
}

/** A host error's reason; anything else is a bug and goes on up (and traps). */
export function hostReason(error: unknown): string {
  if (error instanceof HostError) {
    return error.reason;
  }
  throw error;
}
