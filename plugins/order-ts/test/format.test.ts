import assert from 'node:assert/strict';
import { test } from 'node:test';

import { display, fixed2, roundHalfAwayFromZero } from '../src/format.js';

// Expected values printed by Rust 1.95 (`format!("{x:.2}")`, `format!("{x}")`).
test('fixed2 rounds exact ties half to even, as Rust does', () => {
  const cases: Array<[number, string]> = [
    [0.125, '0.12'],
    [0.375, '0.38'],
    [0.625, '0.62'],
    [0.875, '0.88'],
    [12.125, '12.12'],
    [2.675, '2.67'],
    [1.005, '1.00'],
    [24.98, '24.98'],
    [0, '0.00'],
    [-0, '-0.00'],
    [-1.5, '-1.50'],
    [1e21, '1000000000000000000000.00'],
  ];
  for (const [x, expected] of cases) {
    assert.equal(fixed2(x), expected, String(x));
  }
});

test('display never uses an exponent, as Rust does', () => {
  assert.equal(display(24.98), '24.98');
  assert.equal(display(3), '3');
  assert.equal(display(0), '0');
  assert.equal(display(1e21), '1000000000000000000000');
  assert.equal(display(1e-7), '0.0000001');
  assert.equal(display(1.5e-7), '0.00000015');
  assert.equal(display(2.5e15), '2500000000000000');
});

test('roundHalfAwayFromZero rounds -0.5 to -1, unlike Math.round', () => {
  assert.equal(roundHalfAwayFromZero(-0.5), -1);
  assert.equal(roundHalfAwayFromZero(0.5), 1);
  assert.equal(roundHalfAwayFromZero(1212.5), 1213);
  assert.equal(roundHalfAwayFromZero(-2.4), -2);
});
