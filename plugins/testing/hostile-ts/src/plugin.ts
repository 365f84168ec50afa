/**
 * A deliberately misbehaving TypeScript plugin, for the host's sandbox tests
 * (`host/tests/guest_sandbox.rs`). Never deploy it. The TypeScript twin of
 * `plugins/testing/hostile` (Rust), with the attacks a JavaScript guest can try.
 *
 * Its state machine is `created → processed → done`; a `created` event moves an order to
 * `processed`. Every other event kind is an attack:
 *
 * | event kind | what the plugin does | a safe host answers with |
 * |---|---|---|
 * | `read_file` | looks for a file API (`require('fs')`, `process`, `Deno`) and reads `/etc/passwd` with it | reject "read_file denied: ..." |
 * | `read_env` | reads `process.env` | reject "read_env denied: ..." |
 * | `open_socket` | looks for a socket API (`WebSocket`, `net`) and connects to 127.0.0.1:19042 | reject "open_socket denied: ..." |
 * | `http_request` | `fetch('http://127.0.0.1:19042/')` | a trap (built with `--disable http`, the engine's `fetch` traps), or reject "http_request denied: ..." |
 * | `loop` | spins forever | a failure naming the CPU budget |
 * | `grow_memory` | allocates 1 MiB buffers without bound | a failure naming the memory limit |
 * | `log_flood` | logs `lines` lines (default 1,000,000) of 4,096 bytes | unchanged "log_flood: done" past the log budget (50 lines), or a failure naming the CPU budget |
 * | `huge_attribute` | moves `processed → done` with an attribute of `bytes` bytes (default 20,000,000) | a failure naming the decision bound |
 * | `remember` | keeps the event's id in module state and looks for what an earlier event kept there | unchanged "remember: nothing from an earlier event" (a fresh instance per event) |
 *
 * Whenever an attack gets through, the decision's reason starts with `ESCAPED:`.
 */
import {
  type Decision,
  type OrderPlugin,
  eventData,
  isJsonObject,
  log,
  noChange,
  pluginInfo,
  reject,
  stateMachine,
  transition,
} from '@orderpipe/plugin-sdk';

/** What the guest's global object might offer; a sandboxed one offers none of it. */
type Globals = {
  require?: (module: string) => Record<string, (...args: unknown[]) => unknown>;
  process?: { env?: Record<string, string> };
  Deno?: { readTextFileSync?: (path: string) => string };
  WebSocket?: new (url: string) => unknown;
  fetch?: (url: string) => Promise<unknown>;
};
const globals = globalThis as unknown as Globals;

/** Module state every instance starts with; the `remember` attack writes it and reads it back. */
const remembered: string[] = [];

export const hostile: OrderPlugin = {
  describe() {
    return pluginInfo(
      'hostile-ts',
      '0.1.0',
      stateMachine('created').edge('created', 'processed').edge('processed', 'done'),
    );
  },

  decide(_order, event) {
    const data = parsed(event.data);
    switch (event.kind) {
      case 'created':
        return transition('processed', 'hostile plugin lets orders through');
      case 'read_file':
        return attempt('read_file', () => {
          if (globals.require) return String(globals.require('fs').readFileSync('/etc/passwd', 'utf8'));
          if (globals.Deno?.readTextFileSync) return globals.Deno.readTextFileSync('/etc/passwd');
          throw new Error('no file API (require, Deno are absent)');
        });
      case 'read_env':
        return attempt('read_env', () => {
          const env = globals.process?.env;
          if (env === undefined) throw new Error('no process.env');
          const names = Object.keys(env);
          if (names.length === 0) throw new Error('environment is empty');
          return names.join(',');
        });
      case 'open_socket':
        return attempt('open_socket', () => {
          if (globals.require) return String(globals.require('net').connect(19042, '127.0.0.1'));
          if (globals.WebSocket) return String(new globals.WebSocket('ws://127.0.0.1:19042/'));
          throw new Error('no socket API (require, WebSocket are absent)');
        });
      case 'http_request':
        return attempt('http_request', () => {
          if (globals.fetch === undefined) throw new Error('fetch is absent');
          return String(globals.fetch('http://127.0.0.1:19042/'));
        });
      case 'loop':
        for (;;) {
          // Spins until the host stops it.
        }
      case 'grow_memory': {
        const hoard: Uint8Array[] = [];
        for (;;) {
          hoard.push(new Uint8Array(1 << 20));
        }
      }
      case 'log_flood': {
        const line = 'L'.repeat(4096);
        for (let i = 0; i < number(data, 'lines', 1_000_000); i++) {
          log.info(line);
        }
        return noChange('log_flood: done');
      }
      case 'huge_attribute':
        return transition('done', 'hostile: a huge attribute', {
          blob: 'x'.repeat(number(data, 'bytes', 20_000_000)),
        });
      case 'remember': {
        const earlier = [...remembered];
        remembered.push(event.id);
        const previous = (globals as Record<string, unknown>).hostileLastEvent;
        (globals as Record<string, unknown>).hostileLastEvent = event.id;
        if (earlier.length > 0 || previous !== undefined) {
          return reject(`ESCAPED: remember: kept from earlier events: ${earlier.join(',')} ${String(previous)}`);
        }
        return noChange('remember: nothing from an earlier event');
      }
      default:
        return reject(`unknown event type ${event.kind}`);
    }
  },
};

/** Runs an attack: what it got is an escape, what it threw is the host's refusal. */
function attempt(attack: string, run: () => string): Decision {
  try {
    return transition('done', `ESCAPED: ${attack}: ${run().slice(0, 200)}`);
  } catch (error) {
    return reject(`${attack} denied: ${(error as Error).message}`);
  }
}

function parsed(text: string): Record<string, unknown> {
  try {
    const data = eventData({ id: '', kind: '', data: text, atMs: 0n });
    return isJsonObject(data) ? data : {};
  } catch {
    return {};
  }
}

function number(data: Record<string, unknown>, name: string, fallback: number): number {
  const value = data[name];
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : fallback;
}
