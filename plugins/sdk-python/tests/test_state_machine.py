from orderpipe_plugin import Edge, PluginInfo, StateMachine, plugin_info, state_machine


def test_edges_add_their_states_once_in_order_of_appearance():
    machine = (
        state_machine("created")
        .edge("created", "paid")
        .edge("paid", "shipped")
        .edge("created", "paid")
        .state("archived")
    )
    assert machine.allows("created", "paid")
    assert not machine.allows("paid", "created")
    assert machine.build() == StateMachine(
        states=["created", "paid", "shipped", "archived"],
        initial="created",
        transitions=[Edge(from_="created", to="paid"), Edge(from_="paid", to="shipped")],
    )


def test_plugin_info_builds_the_record():
    info = plugin_info("approve", "0.1.0", state_machine("created").edge("created", "approved"))
    assert info == PluginInfo(
        name="approve",
        version="0.1.0",
        state_machine=StateMachine(
            states=["created", "approved"],
            initial="created",
            transitions=[Edge(from_="created", to="approved")],
        ),
    )
