"""The nameko worker: event handlers and timers."""
