import assert from 'node:assert/strict';
import { test } from 'node:test';

import { pluginInfo, stateMachine } from '../src/index.js';

test('edges add their states once, in order of appearance', () => {
  const machine = stateMachine('created')
    .edge('created', 'paid')
    .edge('paid', 'shipped')
    .edge('created', 'paid')
    .state('archived');
  assert.deepEqual(machine.states, ['created', 'paid', 'shipped', 'archived']);
  assert.deepEqual(machine.transitions, [
    { from: 'created', to: 'paid' },
    { from: 'paid', to: 'shipped' },
  ]);
  assert.equal(machine.allows('created', 'paid'), true);
  assert.equal(machine.allows('paid', 'created'), false);
});

test('pluginInfo copies the machine into a plain record', () => {
  const info = pluginInfo('approve', '0.1.0', stateMachine('created').edge('created', 'approved'));
  assert.deepEqual(info, {
    name: 'approve',
    version: '0.1.0',
    stateMachine: {
      states: ['created', 'approved'],
      initial: 'created',
      transitions: [{ from: 'created', to: 'approved' }],
    },
  });
  assert.equal(Object.getPrototypeOf(info.stateMachine), Object.prototype);
});
