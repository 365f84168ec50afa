/**
 * The `shipped` and `cancel_requested` events: a paid order ships; an order may be
 * cancelled while it awaits payment or is paid, never once it has shipped.
 */
import {
  type Decision,
  type Event,
  type Order,
  eventData,
  isJsonObject,
  reject,
  transition,
} from '@orderpipe/plugin-sdk';

import { AWAITING_PAYMENT, CANCELLED, PAID, SHIPPED } from './status.js';

export function ship(order: Order): Decision {
  switch (order.status) {
    case PAID:
      return transition(SHIPPED, 'order shipped');
    case SHIPPED:
      return reject('order already shipped');
    default:
      return reject(`shipping not expected in status ${order.status}`);
  }
}

/** Cancels on request; a `{"reason": "..."}` in the event's data is kept in the history. */
export function cancel(order: Order, event: Event): Decision {
  switch (order.status) {
    case AWAITING_PAYMENT:
    case PAID:
      return transition(CANCELLED, `cancelled on request${requestedReason(event)}`);
    case SHIPPED:
      return reject('order already shipped');
    case CANCELLED:
      return reject('order already cancelled');
    default:
      return reject(`cancel not allowed in status ${order.status}`);
  }
}

function requestedReason(event: Event): string {
  let data: unknown;
  try {
    data = eventData(event);
  } catch {
    return '';
  }
  return isJsonObject(data) && typeof data.reason === 'string' ? `: ${data.reason}` : '';
}
