/** Declaring a plugin: its state machine, built edge by edge, and its `describe()` answer. */
import type { Edge, PluginInfo, StateMachine } from './types.js';

/**
 * A state machine under construction. It is a plain `StateMachine` record too, so it can be
 * returned from `describe()` as it is.
 */
export class StateMachineBuilder implements StateMachine {
  states: string[];
  initial: string;
  transitions: Edge[] = [];

  constructor(initial: string) {
    this.initial = initial;
    this.states = [initial];
  }

  /** Adds a state that no edge mentions (yet). */
  state(state: string): this {
    this.addState(state);
    return this;
  }

  /** Allows moving from `from` to `to`, adding either state if it is new. */
  edge(from: string, to: string): this {
    this.addState(from);
    this.addState(to);
    if (!this.allows(from, to)) {
      this.transitions.push({ from, to });
    }
    return this;
  }

  /** Whether `from` → `to` is an edge. */
  allows(from: string, to: string): boolean {
    return this.transitions.some((edge) => edge.from === from && edge.to === to);
  }

  private addState(state: string): void {
    if (!this.states.includes(state)) {
      this.states.push(state);
    }
  }
}

/** A state machine with only its initial state (`created` for order pipelines). */
export function stateMachine(initial: string): StateMachineBuilder {
  return new StateMachineBuilder(initial);
}

/** What `describe()` returns. The machine is copied into a plain record. */
export function pluginInfo(name: string, version: string, machine: StateMachine): PluginInfo {
  return {
    name,
    version,
    stateMachine: {
      states: [...machine.states],
      initial: machine.initial,
      transitions: machine.transitions.map(({ from, to }) => ({ from, to })),
    },
  };
}
