"""Weight conversion to and from other libraries' recurrent networks (imported on demand)."""
