"""Training one model: the objective, the trainer and its snapshots, metrics, memory budget, gradient
check."""
