"""Stage 4, the cloud model (source CNN + the device's recent outputs) and the HTTP service that runs it."""
