"""journal layer (see ARCHITECTURE.md)."""
