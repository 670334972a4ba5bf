"""GreenTrainer service: API, database, scheduler, dashboard."""
