"""orderpipe's default order workflow, in Python: the same decisions and reasons as the Rust
``order`` plugin (plugins/order), so either can be the active ``order`` version.

An order with items waits for payment, is paid, then shipped; it may be cancelled until it
ships. An order without items is simply ``processed``, and an order that cannot be priced is
``rejected``. Each event kind has its own module: ``created`` (validate and price the order,
file it under its customer), ``payment`` (accept a payment that covers the total, once per
payment id), ``fulfilment`` (shipping and cancelling).

A failing host call never traps. Where the call guards money (the payment-id check in the
cache) the event is rejected with the host's reason; where it is only bookkeeping (the
per-customer record and the created-orders counter) the error is logged and the decision
stands.
"""
