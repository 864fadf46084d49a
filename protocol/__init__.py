"""The contract between car and network: envelope, topics, signal catalog, signing.

This package imports nothing else of ours; every other package may import it.
"""
