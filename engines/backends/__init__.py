"""Inference backends behind engines.backends.base.Engine; each imports its runtime lazily."""
