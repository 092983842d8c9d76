"""What a model is: features, model types, the model store (log and load), registry aliases."""
