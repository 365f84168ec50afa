"""Declaring a plugin: its state machine, built edge by edge, and its ``describe()`` answer."""

from .types import Edge, PluginInfo, StateMachine


class StateMachineBuilder:
    """A state machine under construction; ``build()`` (or ``plugin_info``) makes the record."""

    def __init__(self, initial: str) -> None:
        self.initial = initial
        self.states = [initial]
        self.transitions: list[tuple[str, str]] = []

    def state(self, state: str) -> "StateMachineBuilder":
        """Adds a state that no edge mentions (yet)."""
        self._add_state(state)
        return self

    def edge(self, from_: str, to: str) -> "StateMachineBuilder":
        """Allows moving from ``from_`` to ``to``, adding either state if it is new."""
        self._add_state(from_)
        self._add_state(to)
        if not self.allows(from_, to):
            self.transitions.append((from_, to))
        return self

    def allows(self, from_: str, to: str) -> bool:
        """Whether ``from_`` → ``to`` is an edge."""
        return (from_, to) in self.transitions

    def build(self) -> StateMachine:
        return StateMachine(
            states=list(self.states),
            initial=self.initial,
            transitions=[Edge(from_=f, to=t) for f, t in self.transitions],
        )

    def _add_state(self, state: str) -> None:
        if state not in self.states:
            self.states.append(state)


def state_machine(initial: str) -> StateMachineBuilder:
    """A state machine with only its initial state (``created`` for order pipelines)."""
    return StateMachineBuilder(initial)


def plugin_info(name: str, version: str, machine: StateMachineBuilder | StateMachine) -> PluginInfo:
    """What ``describe()`` returns."""
    record = machine.build() if isinstance(machine, StateMachineBuilder) else machine
    return PluginInfo(name=name, version=version, state_machine=record)
