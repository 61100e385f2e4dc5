"""A small shop app whose routes call into an app-internal service module."""
