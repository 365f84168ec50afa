"""The app module componentize-py builds: the workflow as the component's exports."""

from orderpipe_plugin.component import export_plugin

from order_workflow.plugin import OrderWorkflow

WitWorld = export_plugin(OrderWorkflow())
