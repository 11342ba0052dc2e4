"""The training engine: batching, fit (one batch: loss_step) and its callbacks (the dynamics profile,
tracking), optimisation, evaluation, the teacher cache, the run store."""
