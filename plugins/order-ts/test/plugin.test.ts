import assert from 'node:assert/strict';
import { test } from 'node:test';

import { reject, stateMachine, transitionTo } from '@orderpipe/plugin-sdk';
import { FakeHost, event, item, order } from '@orderpipe/plugin-sdk/testing';

import { orderWorkflow } from '../src/plugin.js';

test('describes the order state machine, as the Rust plugin does', () => {
  const info = orderWorkflow.describe();
  assert.equal(info.name, 'order');
  assert.equal(info.version, '0.1.0-ts');
  assert.equal(info.stateMachine.initial, 'created');
  assert.deepEqual(info.stateMachine.states, [
    'created',
    'processed',
    'awaiting_payment',
    'rejected',
    'paid',
    'shipped',
    'cancelled',
  ]);
  assert.deepEqual(
    info.stateMachine.transitions.map(({ from, to }) => `${from} -> ${to}`),
    [
      'created -> processed',
      'created -> awaiting_payment',
      'created -> rejected',
      'awaiting_payment -> paid',
      'paid -> shipped',
      'awaiting_payment -> cancelled',
      'paid -> cancelled',
    ],
  );
});

test('an unknown event type is rejected', () => {
  FakeHost.install();
  assert.deepEqual(
    orderWorkflow.decide(order('paid'), event('refund_requested')),
    reject('unknown event type refund_requested'),
  );
});

test('every transition the plugin makes is an edge', () => {
  FakeHost.install();
  const { stateMachine: declared } = orderWorkflow.describe();
  const machine = stateMachine(declared.initial);
  declared.transitions.forEach(({ from, to }) => machine.edge(from, to));
  const priced = { ...order('awaiting_payment'), items: [item('A', 1, 2)] };
  const cases = [
    [order('created'), event('created')],
    [priced, event('payment_received', '{"amount": 2}')],
    [order('paid'), event('shipped')],
    [order('paid'), event('cancel_requested')],
    [priced, event('cancel_requested')],
  ] as const;
  for (const [o, e] of cases) {
    const to = transitionTo(orderWorkflow.decide(o, e));
    assert.ok(to !== undefined, `${o.status} on ${e.kind} is a transition`);
    assert.ok(machine.allows(o.status, to), `${o.status} -> ${to} is an edge`);
  }
});
