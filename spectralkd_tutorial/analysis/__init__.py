"""The method's measurements: capture hidden states, spectral profiles, layer selection (its registry), statistics, plots."""
