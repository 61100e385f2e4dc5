"""Imported for the first time inside a handler: the import system reads this file."""

VALUE = 1
