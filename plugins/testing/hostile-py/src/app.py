"""The app module componentize-py builds."""

from orderpipe_plugin.component import export_plugin

from hostile_py.plugin import Hostile

WitWorld = export_plugin(Hostile())
