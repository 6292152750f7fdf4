"""greenbench: energy, carbon, latency and accuracy benchmarks for deep-learning model variants."""

__version__ = "0.1.0"
