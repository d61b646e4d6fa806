"""The one configuration model (model.py), and the loaders that produce it (load.py).

Every section of the model lives here (admin.py, cluster.py, kernel.py, sync.py, beside
model.py), with the checks the model makes (schedulers.py: scheduler names and options):
the package is the bottom layer and imports nothing of fulcrum outside itself (src/fulcrum/
README.md, tests/unit/test_layers.py). Import from the submodules; this file imports nothing."""
