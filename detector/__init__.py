"""The inference core: face finder, the one crop function, model loading and runtime, analyze.

Importable without Celery or Redis; the worker, training and research all call it.
"""
