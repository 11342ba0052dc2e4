"""What a run does, step by step: the steps, distil, the grid, the study, end to end, model cards, serving."""
