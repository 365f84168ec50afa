/**
 * The host's functions: `store` (the plugin's own rows), `cache` (its own keys), `log` and
 * `clock`. Inside the component they call the WIT imports (bound by `component.ts`); in unit
 * tests they call the fake host of `testing.ts`. Nothing here imports the WIT modules, so
 * this file runs under plain Node.
 *
 * A store or cache call that fails throws a {@link HostError}: an expected failure to handle
 * (reject the event, or log and go on), never a bug. Each call counts against the plugin's
 * host-call quota for the event.
 */
import type { Level, WitHostError } from './types.js';

/** The shape of the host's functions, as jco binds the WIT imports. */
export interface Host {
  store: {
    get(table: string, key: string): string | undefined;
    put(table: string, key: string, value: string): void;
    delete(table: string, key: string): void;
  };
  cache: {
    get(key: string): string | undefined;
    set(key: string, value: string, ttlSeconds: number | undefined): void;
    incr(key: string, delta: bigint): bigint;
    delete(key: string): void;
  };
  log: { log(level: Level, message: string): void };
  clock: { nowMs(): bigint };
}

/** Why a store or cache call failed: `invalid`, `quota-exceeded` or `unavailable`. */
export class HostError extends Error {
  readonly kind: WitHostError['tag'];
  /** The host's explanation, without the kind. */
  readonly detail: string;

  constructor(error: WitHostError) {
    super(`${error.tag}: ${error.val}`);
    this.name = 'HostError';
    this.kind = error.tag;
    this.detail = error.val;
  }

  /** `kind: detail`, ready for a decision's reason or a log line. */
  get reason(): string {
    return this.message;
  }
}

const noHost: Host = new Proxy({} as Host, {
  get() {
    throw new Error(
      'no orderpipe host: inside a component import "@orderpipe/plugin-sdk/component"; ' +
        'in unit tests call FakeHost.install() from "@orderpipe/plugin-sdk/testing"',
    );
  },
});

let current: Host = noHost;

/** Binds the host functions. `component.ts` and the fake host call this; plugins need not. */
export function setHost(host: Host): void {
  current = host;
}

/** Unbinds the host, so that calls fail saying how to bind one. For tests. */
export function clearHost(): void {
  current = noHost;
}

/**
 * Calls a host function and turns the WIT error it reports into a {@link HostError}. jco's
 * bindings throw an error whose `payload` is the WIT `host-error` value.
 */
function call<T>(f: () => T): T {
  try {
    return f();
  } catch (error) {
    const payload = (error as { payload?: unknown } | null)?.payload;
    if (isWitHostError(payload)) {
      throw new HostError(payload);
    }
    throw error;
  }
}

function isWitHostError(value: unknown): value is WitHostError {
  const tag = (value as { tag?: unknown } | null)?.tag;
  return (
    (tag === 'invalid' || tag === 'quota-exceeded' || tag === 'unavailable') &&
    typeof (value as { val?: unknown }).val === 'string'
  );
}

/** A row store (Cassandra): every table and key is private to the calling plugin. */
export const store = {
  /** Reads a value; `undefined` when the key was never written or was deleted. */
  get(table: string, key: string): string | undefined {
    return call(() => current.store.get(table, key));
  },
  /** Writes a value, replacing any earlier one. */
  put(table: string, key: string, value: string): void {
    call(() => current.store.put(table, key, value));
  },
  /** Deletes a value; deleting a missing key is not an error. */
  delete(table: string, key: string): void {
    call(() => current.store.delete(table, key));
  },
};

/** A cache (Redis) under the plugin's own key prefix, for short-lived facts. */
export const cache = {
  /** Reads a value; `undefined` when it is missing or expired. */
  get(key: string): string | undefined {
    return call(() => current.cache.get(key));
  },
  /** Sets a value; with `ttlSeconds` it expires after that many seconds. */
  set(key: string, value: string, ttlSeconds?: number): void {
    call(() => current.cache.set(key, value, ttlSeconds));
  },
  /** Adds `delta` to an integer value (a missing one counts as 0) and returns the new value. */
  incr(key: string, delta: number | bigint): bigint {
    return call(() => current.cache.incr(key, BigInt(delta)));
  },
  /** Deletes a value; deleting a missing key is not an error. */
  delete(key: string): void {
    call(() => current.cache.delete(key));
  },
};

/**
 * Log lines into the host's log, tagged with the plugin, its version and the order. Each
 * event has a budget of lines and bytes; past it the host drops lines and counts them.
 */
export const log = {
  log(level: Level, message: string): void {
    current.log.log(level, message);
  },
  debug(message: string): void {
    current.log.log('debug', message);
  },
  info(message: string): void {
    current.log.log('info', message);
  },
  warn(message: string): void {
    current.log.log('warn', message);
  },
  error(message: string): void {
    current.log.log('error', message);
  },
};

/** The host's clock: the event's time while deciding it (as is `Date.now()` in the guest). */
export const clock = {
  /** Milliseconds since the Unix epoch. */
  nowMs(): bigint {
    return current.clock.nowMs();
  },
};
