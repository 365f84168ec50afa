"""The app module componentize-py builds: the workflow as the component's exports, warmed up on
sample decisions before the build's snapshot (``order_workflow.warm_up``)."""

from orderpipe_plugin.component import export_plugin

from order_workflow.plugin import OrderWorkflow
from order_workflow.warm_up import samples

WitWorld = export_plugin(OrderWorkflow(), warm_up=samples)
