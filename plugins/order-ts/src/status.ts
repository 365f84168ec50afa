/** The statuses of the workflow. */
export const CREATED = 'created';
export const PROCESSED = 'processed';
export const AWAITING_PAYMENT = 'awaiting_payment';
export const REJECTED = 'rejected';
export const PAID = 'paid';
export const SHIPPED = 'shipped';
export const CANCELLED = 'cancelled';
