"""The one configuration model (model.py), and the loaders that produce it (load.py).

Import from the submodules; this package imports nothing itself, so the cluster
section (which builds on `strict.Strict`) and the model can refer to each other."""
