"""summaries layer (see ARCHITECTURE.md)."""
