"""Training: the world model, its data pipeline and the training loop."""
