"""HTTP routers: thin adapters over the domain modules."""
