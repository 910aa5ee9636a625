"""Firmware simulators of the wearables crampsense supports, and a bleak backend for them."""
