"""What the web and the worker both need, and nothing heavier (never TensorFlow)."""
