/**
 * Building and reading decisions. A decision is the WIT variant as jco maps it
 * (`{ tag: 'transition' | 'no-change' | 'reject', val }`); these helpers only build and read
 * it, so a plugin may also write the object by hand.
 */
import type { Attribute, Decision } from './types.js';

/**
 * Move the order to `to`, recording `reason` in its history. Each entry of `attributes` is
 * set on the order, its value stored as JSON (`{ total: 12.5 }` stores `12.5`).
 *
 * A value JSON cannot represent (a `bigint`, `undefined`, a function, a cycle) turns the
 * decision into a reject that names the attribute, rather than a trap.
 */
export function transition(
  to: string,
  reason: string,
  attributes: Record<string, unknown> = {},
): Decision {
  const encoded: Attribute[] = [];
  for (const [key, value] of Object.entries(attributes)) {
    const json = toJson(value);
    if (!json.ok) {
      return reject(`attribute ${key} is not valid JSON: ${json.error}`);
    }
    encoded.push({ key, value: json.text });
  }
  return { tag: 'transition', val: { to, reason, attributes: encoded } };
}

/** Accept the event but keep the order's status. */
export function noChange(reason: string): Decision {
  return { tag: 'no-change', val: reason };
}

/** Refuse the event; the order is unchanged and `reason` is recorded. */
export function reject(reason: string): Decision {
  return { tag: 'reject', val: reason };
}

/** The status a transition moves to; `undefined` for no-change and reject. */
export function transitionTo(decision: Decision): string | undefined {
  return decision.tag === 'transition' ? decision.val.to : undefined;
}

/** Whether the event was refused. */
export function isReject(decision: Decision): boolean {
  return decision.tag === 'reject';
}

/** The reason recorded with the decision, whatever its kind. */
export function reasonOf(decision: Decision): string {
  return decision.tag === 'transition' ? decision.val.reason : decision.val;
}

/**
 * An attribute a transition sets, parsed from its JSON; `undefined` when it sets no such
 * attribute (or the decision is not a transition). Throws `SyntaxError` on broken JSON.
 */
export function decisionAttribute(decision: Decision, key: string): unknown {
  if (decision.tag !== 'transition') {
    return undefined;
  }
  const raw = findAttribute(decision.val.attributes, key);
  return raw === undefined ? undefined : JSON.parse(raw);
}

/** The last attribute named `key`, as JSON text. */
export function findAttribute(attributes: Attribute[], key: string): string | undefined {
  let found: string | undefined;
  for (const attribute of attributes) {
    if (attribute.key === key) {
      found = attribute.value;
    }
  }
  return found;
}

function toJson(value: unknown): { ok: true; text: string } | { ok: false; error: string } {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) {
      return { ok: false, error: `${typeof value} has no JSON form` };
    }
    return { ok: true, text };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}
