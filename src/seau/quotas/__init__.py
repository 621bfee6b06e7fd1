"""Per-owner quotas: usage, reservations of uploads in flight, admins' overrides."""
