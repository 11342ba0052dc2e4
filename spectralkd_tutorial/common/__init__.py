"""The bottom layer: errors, atomic io, validated configs' base, input checks, device, processes, metrics, packaged results. Imports nothing above it."""
