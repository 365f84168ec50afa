"""The statuses of the workflow."""

CREATED = "created"
PROCESSED = "processed"
AWAITING_PAYMENT = "awaiting_payment"
REJECTED = "rejected"
PAID = "paid"
SHIPPED = "shipped"
CANCELLED = "cancelled"
