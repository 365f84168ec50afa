import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HostError, cache, clearHost, clock, log, setHost, store } from '../src/host.js';
import { DEFAULT_NOW_MS, FakeHost } from '../src/testing.js';

test('fake store and cache round-trip and count calls', () => {
  const host = FakeHost.install();
  store.put('t', 'k', 'v');
  assert.equal(store.get('t', 'k'), 'v');
  assert.equal(host.storeGet('t', 'k'), 'v');
  store.delete('t', 'k');
  assert.equal(store.get('t', 'k'), undefined);

  cache.set('c', '1', 60);
  assert.equal(host.cacheTtl('c'), 60);
  assert.equal(cache.incr('c', 2), 3n);
  assert.equal(cache.incr('fresh', 5n), 5n);
  cache.delete('c');
  assert.equal(cache.get('c'), undefined);
  assert.equal(host.calls(), 9);
});

test('store rows are listed sorted by table and key', () => {
  const host = FakeHost.install();
  store.put('b', 'k', '2');
  store.put('a', 'z', '1');
  assert.deepEqual(host.storeRows(), [
    ['a', 'z', '1'],
    ['b', 'k', '2'],
  ]);
});

test('incr on a non-integer is invalid', () => {
  const host = FakeHost.install();
  host.cacheSet('word', 'hello');
  assert.throws(
    () => cache.incr('word', 1),
    (error: unknown) => error instanceof HostError && error.kind === 'invalid',
  );
});

test('a quota turns later calls into quota-exceeded errors', () => {
  const host = FakeHost.install();
  host.setQuota(2);
  cache.get('a');
  cache.get('a');
  assert.throws(
    () => cache.get('a'),
    (error: unknown) =>
      error instanceof HostError &&
      error.kind === 'quota-exceeded' &&
      error.reason === 'quota-exceeded: host call quota of 2 per event exceeded',
  );
});

test('a failure applies until recovered', () => {
  const host = FakeHost.install();
  host.failWith({ tag: 'unavailable', val: 'down' });
  assert.throws(
    () => store.get('t', 'k'),
    (error: unknown) =>
      error instanceof HostError && error.reason === 'unavailable: down' && error.detail === 'down',
  );
  host.recover();
  assert.equal(store.get('t', 'k'), undefined);
});

test('logs and the clock are recorded', () => {
  const host = FakeHost.install();
  assert.equal(clock.nowMs(), DEFAULT_NOW_MS);
  host.setNowMs(5n);
  assert.equal(clock.nowMs(), 5n);
  log.warn('careful');
  assert.equal(host.logged('warn', 'care'), true);
  assert.equal(host.logged('info', 'care'), false);
  assert.deepEqual(host.logs(), [{ level: 'warn', message: 'careful' }]);
});

test('an error without a WIT payload passes through unchanged', () => {
  const boom = new TypeError('boom');
  const host = FakeHost.install();
  setHost({
    store: {
      get: () => {
        throw boom;
      },
      put: () => {},
      delete: () => {},
    },
  } as never);
  assert.throws(() => store.get('t', 'k'), (error: unknown) => error === boom);
  assert.equal(host.calls(), 0);
});

test('without a host, a call says how to get one', () => {
  clearHost();
  assert.throws(() => cache.get('a'), /call FakeHost.install\(\)/);
  assert.throws(() => log.info('a'), /import "@orderpipe\/plugin-sdk\/component"/);
});
