"""The engine room: devices, the training loop, the run store and the steps every entry point shares."""
