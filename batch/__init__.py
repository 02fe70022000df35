"""Batch command-line client (`dfd`) for the deepfake detection job API."""
