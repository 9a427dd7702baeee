"""`dse search`: multi-objective design-space exploration (Optuna ask/tell driving Ray tasks)."""
