//! A plugin with an illegal state machine: its initial state is not `created`, where every
//! order enters the pipeline. The host must refuse to load or upload it. Never deploy it.

use orderpipe_plugin_sdk::{
    Decision, Event, Order, OrderPlugin, PluginInfo, StateMachine, export_plugin,
};

pub struct BadMachine;

impl OrderPlugin for BadMachine {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "order",
            "0.9.0",
            StateMachine::new("start").edge("start", "done"),
        )
    }

    fn decide(_order: Order, _event: Event) -> Decision {
        Decision::transition("done", "bad-machine: never loaded")
    }
}

export_plugin!(BadMachine);
