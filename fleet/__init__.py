"""What every process of the fleet shares: the store (Redis, or in-process for a single
node), the records kept in it, and structured logging."""
