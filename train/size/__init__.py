"""Hand size (seed 002, Shu et al.): multi-task regression of hand length and palm width from the
background-removed depth crop, its one-task and linear baselines, and the study's metrics."""
