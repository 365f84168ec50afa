import assert from 'node:assert/strict';
import { test } from 'node:test';

import { eventData, isJsonObject, orderAttribute, orderAttributeRaw } from '../src/index.js';
import { event, order } from '../src/testing.js';

test('empty event data reads as an empty object', () => {
  assert.deepEqual(eventData(event('payment_received', '')), {});
  assert.deepEqual(eventData(event('payment_received', '  ')), {});
  assert.deepEqual(eventData(event('payment_received', '{"amount": 3}')), { amount: 3 });
  assert.throws(() => eventData(event('payment_received', '{')), SyntaxError);
});

test('order attributes parse as JSON, the last one winning', () => {
  const o = order('awaiting_payment');
  o.attributes.push({ key: 'total', value: '1' }, { key: 'total', value: '12.5' });
  o.attributes.push({ key: 'broken', value: '{' });
  assert.equal(orderAttribute(o, 'total'), 12.5);
  assert.equal(orderAttribute(o, 'missing'), undefined);
  assert.throws(() => orderAttribute(o, 'broken'), SyntaxError);
  assert.equal(orderAttributeRaw(o, 'broken'), '{');
});

test('isJsonObject accepts only objects', () => {
  assert.equal(isJsonObject({}), true);
  assert.equal(isJsonObject([]), false);
  assert.equal(isJsonObject(null), false);
  assert.equal(isJsonObject('x'), false);
});
