import assert from 'node:assert/strict';
import { test } from 'node:test';

import { type Decision, reasonOf, reject, transition } from '@orderpipe/plugin-sdk';
import { FakeHost, event, order } from '@orderpipe/plugin-sdk/testing';

import { orderWorkflow } from '../src/plugin.js';

function decide(status: string, kind: string, data = '{}'): Decision {
  return orderWorkflow.decide(order(status), event(kind, data));
}

test('a paid order ships, once', () => {
  FakeHost.install();
  assert.deepEqual(decide('paid', 'shipped'), transition('shipped', 'order shipped'));
  assert.deepEqual(decide('shipped', 'shipped'), reject('order already shipped'));
});

test('an unpaid order does not ship', () => {
  FakeHost.install();
  for (const status of ['created', 'processed', 'awaiting_payment', 'rejected', 'cancelled']) {
    assert.deepEqual(
      decide(status, 'shipped'),
      reject(`shipping not expected in status ${status}`),
    );
  }
});

test('an order awaiting payment or paid can be cancelled', () => {
  FakeHost.install();
  for (const status of ['awaiting_payment', 'paid']) {
    assert.deepEqual(
      decide(status, 'cancel_requested'),
      transition('cancelled', 'cancelled on request'),
    );
  }
});

test('the cancel reason is kept when there is one', () => {
  FakeHost.install();
  assert.equal(
    reasonOf(decide('paid', 'cancel_requested', '{"reason": "changed my mind"}')),
    'cancelled on request: changed my mind',
  );
  assert.equal(reasonOf(decide('paid', 'cancel_requested', 'not json')), 'cancelled on request');
  assert.equal(reasonOf(decide('paid', 'cancel_requested', '{"reason": 3}')), 'cancelled on request');
});

test('cancel in other statuses is rejected', () => {
  FakeHost.install();
  assert.deepEqual(decide('shipped', 'cancel_requested'), reject('order already shipped'));
  assert.deepEqual(decide('cancelled', 'cancel_requested'), reject('order already cancelled'));
  for (const status of ['created', 'processed', 'rejected']) {
    assert.deepEqual(
      decide(status, 'cancel_requested'),
      reject(`cancel not allowed in status ${status}`),
    );
  }
});
