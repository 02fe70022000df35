"""Benchmark: the service against a naive Flask app, on this machine (`make bench`)."""
