"""Task adapters: build, train, evaluate and run a model of one task family."""
