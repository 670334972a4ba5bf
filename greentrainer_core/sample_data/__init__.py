"""Sample data shipped with the project (see README.md here for source and licence)."""
