import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  type Decision,
  type Order,
  decisionAttribute,
  isReject,
  reasonOf,
  reject,
  transitionTo,
} from '@orderpipe/plugin-sdk';
import { FakeHost, event, item, order } from '@orderpipe/plugin-sdk/testing';

import { PAYMENT_ID_TTL_SECONDS } from '../src/payment.js';
import { orderWorkflow } from '../src/plugin.js';

/** An order awaiting payment of 12.50. */
function awaitingPayment(): Order {
  return {
    ...order('awaiting_payment'),
    items: [item('A', 5, 2.5)],
    attributes: [
      { key: 'total', value: '12.5' },
      { key: 'currency', value: '"USD"' },
    ],
  };
}

function pay(o: Order, data: string): Decision {
  return orderWorkflow.decide(o, event('payment_received', data));
}

test('a payment covering the total pays the order', () => {
  FakeHost.install();
  const decision = pay(awaitingPayment(), '{"amount": 12.5}');
  assert.equal(transitionTo(decision), 'paid');
  assert.equal(reasonOf(decision), 'payment of 12.50 received');
  assert.equal(decisionAttribute(decision, 'paid_amount'), 12.5);
  assert.equal(decisionAttribute(decision, 'payment_id'), undefined);
});

test('an overpayment pays the order', () => {
  FakeHost.install();
  assert.equal(transitionTo(pay(awaitingPayment(), '{"amount": 20}')), 'paid');
});

test('a short payment is rejected', () => {
  FakeHost.install();
  assert.deepEqual(
    pay(awaitingPayment(), '{"amount": 5}'),
    reject('amount 5.00 is less than the order total 12.50'),
  );
  assert.deepEqual(
    pay(awaitingPayment(), '{"amount": 12.49}'),
    reject('amount 12.49 is less than the order total 12.50'),
  );
});

test('amounts compare in whole cents and print as Rust prints them', () => {
  FakeHost.install();
  assert.equal(transitionTo(pay(awaitingPayment(), '{"amount": 12.499999}')), 'paid');
  const order = { ...awaitingPayment(), attributes: [{ key: 'total', value: '12.13' }] };
  // 12.125 is 1212.5 cents, rounded away from zero to 1213: it pays 12.13. Printed with two
  // decimals it is a tie, which Rust (and so the Rust plugin) rounds half to even: "12.12".
  assert.equal(reasonOf(pay(order, '{"amount": 12.125}')), 'payment of 12.12 received');
});

test('a missing amount is rejected', () => {
  FakeHost.install();
  for (const data of ['{}', '', '{"amount": null}']) {
    assert.deepEqual(pay(awaitingPayment(), data), reject('payment has no amount'), data);
  }
});

test('a non-numeric amount is rejected', () => {
  FakeHost.install();
  assert.deepEqual(
    pay(awaitingPayment(), '{"amount": "12.50"}'),
    reject('amount must be a number, got "12.50"'),
  );
});

test('malformed payment data is rejected', () => {
  FakeHost.install();
  assert.match(reasonOf(pay(awaitingPayment(), '{')), /^payment data is not valid JSON/);
  assert.deepEqual(pay(awaitingPayment(), '[1]'), reject('payment data must be a JSON object'));
  assert.deepEqual(
    pay(awaitingPayment(), '{"amount": 20, "payment_id": 7}'),
    reject('payment_id must be a non-empty string, got 7'),
  );
  assert.deepEqual(
    pay(awaitingPayment(), '{"amount": 1e400}'),
    reject('payment data is not valid JSON: number out of range'),
  );
});

test('a payment in another status is rejected', () => {
  FakeHost.install();
  for (const status of ['created', 'processed', 'rejected', 'paid', 'shipped', 'cancelled']) {
    assert.deepEqual(
      pay({ ...awaitingPayment(), status }, '{"amount": 20}'),
      reject(`payment not expected in status ${status}`),
    );
  }
});

test('the total is recomputed when the attribute is missing or broken', () => {
  const host = FakeHost.install();
  const missing = { ...awaitingPayment(), attributes: [] };
  assert.equal(
    reasonOf(pay(missing, '{"amount": 12}')),
    'amount 12.00 is less than the order total 12.50',
  );
  const broken = { ...awaitingPayment(), attributes: [{ key: 'total', value: '"lots"' }] };
  assert.equal(transitionTo(pay(broken, '{"amount": 12.5}')), 'paid');
  assert.equal(host.logged('warn', 'order attribute total is not a number'), true);
});

test('a payment id is claimed for a day', () => {
  const host = FakeHost.install();
  const decision = pay(awaitingPayment(), '{"amount": 12.5, "payment_id": "p-1"}');
  assert.equal(reasonOf(decision), 'payment (p-1) of 12.50 received');
  assert.equal(decisionAttribute(decision, 'payment_id'), 'p-1');
  assert.equal(host.cacheGet('payment:p-1'), 'event-1');
  assert.equal(host.cacheTtl('payment:p-1'), PAYMENT_ID_TTL_SECONDS);
});

test('a payment id used by another event is a duplicate', () => {
  const host = FakeHost.install();
  host.cacheSet('payment:p-1', 'event-0');
  assert.deepEqual(
    pay(awaitingPayment(), '{"amount": 12.5, "payment_id": "p-1"}'),
    reject('duplicate payment p-1'),
  );
  assert.equal(host.cacheGet('payment:p-1'), 'event-0');
});

test('a redelivered payment event is accepted again', () => {
  const host = FakeHost.install();
  const first = pay(awaitingPayment(), '{"amount": 12.5, "payment_id": "p-1"}');
  const again = pay(awaitingPayment(), '{"amount": 12.5, "payment_id": "p-1"}');
  assert.deepEqual(first, again);
  assert.equal(transitionTo(again), 'paid');
  assert.equal(host.cacheGet('payment:p-1'), 'event-1');
  assert.equal(host.logged('info', 'a redelivery'), true);
});

test('a short payment does not claim its id', () => {
  const host = FakeHost.install();
  pay(awaitingPayment(), '{"amount": 1, "payment_id": "p-1"}');
  assert.equal(host.cacheGet('payment:p-1'), undefined);
  assert.equal(host.calls(), 0);
});

test('a payment without an id makes no host call', () => {
  const host = FakeHost.install();
  assert.equal(transitionTo(pay(awaitingPayment(), '{"amount": 12.5}')), 'paid');
  assert.equal(host.calls(), 0);
});

test('an unavailable cache rejects a payment with an id', () => {
  const host = FakeHost.install();
  host.failWith({ tag: 'unavailable', val: 'redis timed out' });
  assert.deepEqual(
    pay(awaitingPayment(), '{"amount": 12.5, "payment_id": "p-1"}'),
    reject('payment p-1 could not be checked for duplicates: unavailable: redis timed out'),
  );
});

test('a failing claim rejects the payment', () => {
  const host = FakeHost.install();
  host.setQuota(1);
  const decision = pay(awaitingPayment(), '{"amount": 12.5, "payment_id": "p-1"}');
  assert.equal(isReject(decision), true);
  assert.match(reasonOf(decision), /quota-exceeded/);
});
