"""Celery worker: holds the model, finds faces, classifies crops."""
