"""Recorded grid carbon-intensity traces shipped as package data (see README.md)."""
