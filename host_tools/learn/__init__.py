"""Stage 2, epochs -> models: the Keras models, source training, transfer (fine-tune), distillation, pruning + int8."""
