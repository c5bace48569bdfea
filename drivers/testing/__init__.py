"""Test helpers that ship with drivers (the guest image builder and daemons live beside this)."""
