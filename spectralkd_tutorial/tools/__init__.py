"""Maintenance tools for the notebooks and the repository (not the product)."""
