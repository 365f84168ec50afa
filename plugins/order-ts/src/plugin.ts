/**
 * orderpipe's default order workflow, in TypeScript: the same decisions and reasons as the
 * Rust `order` plugin (plugins/order), so either can be the active `order` version.
 *
 * An order with items waits for payment, is paid, then shipped; it may be cancelled until it
 * ships. An order without items is simply `processed`, and an order that cannot be priced is
 * `rejected`. Each event kind has its own module: `created.ts` (validate and price the order,
 * file it under its customer), `payment.ts` (accept a payment that covers the total, once per
 * payment id), `fulfilment.ts` (shipping and cancelling).
 *
 * A failing host call never traps. Where the call guards money (the payment-id check in the
 * cache) the event is rejected with the host's reason; where it is only bookkeeping (the
 * per-customer record and the created-orders counter) the error is logged and the decision
 * stands.
 */
import { type OrderPlugin, pluginInfo, reject, stateMachine } from '@orderpipe/plugin-sdk';

import { decideCreated } from './created.js';
import { cancel, ship } from './fulfilment.js';
import { decidePayment } from './payment.js';
import { AWAITING_PAYMENT, CANCELLED, CREATED, PAID, PROCESSED, REJECTED, SHIPPED } from './status.js';

export const NAME = 'order';
/** The Rust plugin's version with a `-ts` suffix, so the registry tells the two apart. */
export const VERSION = '0.1.0-ts';

export const orderWorkflow: OrderPlugin = {
  describe() {
    const machine = stateMachine(CREATED)
      .edge(CREATED, PROCESSED)
      .edge(CREATED, AWAITING_PAYMENT)
      .edge(CREATED, REJECTED)
      .edge(AWAITING_PAYMENT, PAID)
      .edge(PAID, SHIPPED)
      .edge(AWAITING_PAYMENT, CANCELLED)
      .edge(PAID, CANCELLED);
    return pluginInfo(NAME, VERSION, machine);
  },

  decide(order, event) {
    switch (event.kind) {
      case 'created':
        return decideCreated(order);
      case 'payment_received':
        return decidePayment(order, event);
      case 'shipped':
        return ship(order);
      case 'cancel_requested':
        return cancel(order, event);
      default:
        return reject(`unknown event type ${event.kind}`);
    }
  },
};
