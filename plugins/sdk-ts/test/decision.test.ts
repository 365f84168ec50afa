import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  decisionAttribute,
  isReject,
  noChange,
  reasonOf,
  reject,
  transition,
  transitionTo,
} from '../src/index.js';

test('transition encodes each attribute as JSON text', () => {
  const decision = transition('paid', 'payment received', { total: 12.5, currency: 'EUR' });
  assert.deepEqual(decision, {
    tag: 'transition',
    val: {
      to: 'paid',
      reason: 'payment received',
      attributes: [
        { key: 'total', value: '12.5' },
        { key: 'currency', value: '"EUR"' },
      ],
    },
  });
  assert.equal(transitionTo(decision), 'paid');
  assert.equal(decisionAttribute(decision, 'total'), 12.5);
  assert.equal(decisionAttribute(decision, 'missing'), undefined);
});

test('an attribute JSON cannot represent turns the decision into a reject naming it', () => {
  const decision = transition('paid', 'ok', { count: 3n });
  assert.equal(isReject(decision), true);
  assert.match(reasonOf(decision), /^attribute count is not valid JSON: /);
  assert.equal(
    reasonOf(transition('paid', 'ok', { nothing: undefined })),
    'attribute nothing is not valid JSON: undefined has no JSON form',
  );
});

test('no-change and reject carry their reason and no target', () => {
  assert.deepEqual(noChange('noted'), { tag: 'no-change', val: 'noted' });
  assert.deepEqual(reject('no'), { tag: 'reject', val: 'no' });
  assert.equal(transitionTo(reject('no')), undefined);
  assert.equal(reasonOf(noChange('noted')), 'noted');
  assert.equal(isReject(noChange('noted')), false);
  assert.equal(decisionAttribute(reject('no'), 'total'), undefined);
});
