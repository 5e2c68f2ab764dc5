"""vaepipe: a variational autoencoder on MNIST, as an importable library for the DVC stages.

Its sub-packages follow the data flow, each importing only those listed before it (tests/test_layers.py):

- `core`: params, errors, artifact files, paths, devices and precision, the stage runner
- `data`: the datasets, their corruptions, image files of users
- `figures`: the pipeline's figures
- `vae`: the model family and its priors, objectives, training (gradients, checkpoints, processes), likelihoods
- `latent`, `generation`, `codecs`, `anomaly`: what the codes and the likelihood are used for
- `explorer`: the offline latent-space page

The modules at this top level only keep commands written before the sub-packages working.
"""
