"""Measurement: energy meters, carbon, latency, complexity, device fingerprint."""
