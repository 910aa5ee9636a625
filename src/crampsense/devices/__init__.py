"""devices layer (see ARCHITECTURE.md)."""
