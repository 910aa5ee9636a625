"""detection layer (see ARCHITECTURE.md)."""
