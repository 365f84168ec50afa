import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  type Decision,
  type LineItem,
  type Order,
  decisionAttribute,
  reasonOf,
  reject,
  transition,
  transitionTo,
} from '@orderpipe/plugin-sdk';
import { FakeHost, event, item, order } from '@orderpipe/plugin-sdk/testing';

import { CURRENCIES, ORDERS_BY_CUSTOMER, ORDERS_CREATED, orderTotal } from '../src/created.js';
import { orderWorkflow } from '../src/plugin.js';

function decideCreated(o: Order): Decision {
  return orderWorkflow.decide(o, event('created', '{}'));
}

function withItems(items: LineItem[]): Order {
  return { ...order('created'), items };
}

test('an order without items is processed', () => {
  FakeHost.install();
  assert.deepEqual(decideCreated(order('created')), transition('processed', 'order has no items'));
});

test('an order with items awaits payment of its total', () => {
  FakeHost.install();
  const decision = decideCreated(withItems([item('A', 2, 1.25), item('B', 1, 10)]));
  assert.equal(transitionTo(decision), 'awaiting_payment');
  assert.equal(reasonOf(decision), 'awaiting payment of 12.50 USD');
  assert.equal(decisionAttribute(decision, 'total'), 12.5);
  assert.equal(decisionAttribute(decision, 'currency'), 'USD');
});

test('the total is rounded to cents', () => {
  FakeHost.install();
  const decision = decideCreated(withItems([item('A', 3, 0.1), item('B', 1, 0.2), item('C', 1, 0.004)]));
  assert.equal(decisionAttribute(decision, 'total'), 0.5);
  assert.equal(orderTotal([item('A', 1, 0.1), item('B', 1, 0.2)]), 0.3);
  assert.equal(orderTotal([item('A', 1, 0.125)]), 0.13, 'half a cent rounds away from zero');
});

test('a named currency is kept, upper-cased', () => {
  FakeHost.install();
  const decision = decideCreated({ ...withItems([item('A', 1, 5)]), currency: 'eur' });
  assert.equal(decisionAttribute(decision, 'currency'), 'EUR');
  assert.equal(reasonOf(decision), 'awaiting payment of 5.00 EUR');
});

test('every listed currency is accepted', () => {
  FakeHost.install();
  for (const code of CURRENCIES) {
    const decision = decideCreated({ ...withItems([item('A', 1, 1)]), currency: code });
    assert.equal(transitionTo(decision), 'awaiting_payment', code);
  }
});

test('an unknown currency is rejected, even without items', () => {
  FakeHost.install();
  assert.deepEqual(
    decideCreated({ ...withItems([item('A', 1, 5)]), currency: 'XYZ' }),
    transition('rejected', 'unknown currency "XYZ"'),
  );
  assert.deepEqual(
    decideCreated({ ...order('created'), currency: '' }),
    transition('rejected', 'unknown currency ""'),
  );
});

test('a non-positive qty is rejected', () => {
  FakeHost.install();
  for (const qty of [0, -1]) {
    assert.deepEqual(
      decideCreated(withItems([item('A', 1, 1), item('ABC', qty, 1)])),
      transition('rejected', 'item 2 (sku ABC): qty must be positive'),
    );
  }
});

test('a negative or non-finite unit price is rejected, a free item accepted', () => {
  FakeHost.install();
  assert.deepEqual(
    decideCreated(withItems([item('A', 1, -0.01)])),
    transition('rejected', 'item 1 (sku A): unit_price must not be negative'),
  );
  assert.deepEqual(
    decideCreated(withItems([item('A', 1, Number.NaN)])),
    transition('rejected', 'item 1 (sku A): unit_price must be a finite number'),
  );
  assert.equal(decisionAttribute(decideCreated(withItems([item('GIFT', 1, 0)])), 'total'), 0);
});

test('an empty sku is rejected', () => {
  FakeHost.install();
  assert.deepEqual(
    decideCreated(withItems([item('A', 1, 1), item(' ', 1, 1)])),
    transition('rejected', 'item 2: sku must not be empty'),
  );
});

test('every problem is named', () => {
  FakeHost.install();
  const decision = decideCreated({
    ...withItems([item('A', 0, 1), item('B', 1, -1)]),
    currency: 'ABC',
  });
  assert.equal(
    reasonOf(decision),
    'unknown currency "ABC"; item 1 (sku A): qty must be positive; item 2 (sku B): unit_price must not be negative',
  );
});

test('an overflowing total is rejected', () => {
  FakeHost.install();
  assert.deepEqual(
    decideCreated(withItems([item('A', 2n ** 63n - 1n, Number.MAX_VALUE)])),
    transition('rejected', 'order total is too large'),
  );
});

test('an accepted order is filed under its customer and counted', () => {
  const host = FakeHost.install();
  const o = { ...withItems([item('A', 2, 1.25)]), customer: 'alice' };
  decideCreated(o);
  assert.equal(host.storeGet(ORDERS_BY_CUSTOMER, `alice/${o.id}`), '2.5');
  assert.equal(host.cacheGet(ORDERS_CREATED), '1');
  assert.equal(host.logged('info', '1 orders so far'), true);
});

test('a redelivered created event writes the same record', () => {
  const host = FakeHost.install();
  const o = withItems([item('A', 1, 3)]);
  assert.deepEqual(decideCreated(o), decideCreated(o));
  assert.deepEqual(host.storeRows(), [[ORDERS_BY_CUSTOMER, `anonymous/${o.id}`, '3']]);
});

test('an order without a customer is filed as anonymous, with total 0', () => {
  const host = FakeHost.install();
  const o = { ...order('created'), customer: '  ' };
  decideCreated(o);
  assert.equal(host.storeGet(ORDERS_BY_CUSTOMER, `anonymous/${o.id}`), '0');
});

test('a rejected order is not filed', () => {
  const host = FakeHost.install();
  decideCreated(withItems([item('A', 0, 1)]));
  assert.deepEqual(host.storeRows(), []);
  assert.equal(host.calls(), 0);
});

test('host errors while filing are logged, not fatal', () => {
  const host = FakeHost.install();
  host.failWith({ tag: 'unavailable', val: 'cassandra timed out' });
  const decision = decideCreated(withItems([item('A', 1, 1)]));
  assert.equal(transitionTo(decision), 'awaiting_payment');
  assert.equal(
    host.logged('warn', 'could not file the order under customer anonymous: unavailable: cassandra'),
    true,
  );
  assert.equal(host.logged('warn', 'could not count the order'), true);
});

test('a created event on an existing order is rejected', () => {
  FakeHost.install();
  assert.deepEqual(decideCreated(order('paid')), reject('order already created (status paid)'));
});
