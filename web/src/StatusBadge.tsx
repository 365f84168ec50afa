export function StatusBadge({ status }: { status: string }) {
  return <span className={`status status-${status.replace(/[^a-z_]/gi, "")}`}>{status}</span>;
}
