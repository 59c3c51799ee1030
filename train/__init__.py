"""Training tooling (needs the `train` extra): model definitions, datasets, losses, metrics, training and
hyper-parameter search. The runtime (`stream`) never imports this package."""
