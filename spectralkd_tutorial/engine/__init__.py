"""The training engine: batching, fit, optimisation, evaluation, the teacher cache, the run store, tracking."""
