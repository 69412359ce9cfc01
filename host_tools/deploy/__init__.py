"""Stage 3, models -> artifacts: TFLite export, C arrays, the native engine's plan, generated headers, host reference."""
