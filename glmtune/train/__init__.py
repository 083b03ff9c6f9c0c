"""Training: the recipe (config -> data -> model -> Trainer -> checkpoints, loss plot) and its parts."""
