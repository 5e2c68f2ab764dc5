"""vaepipe: a variational autoencoder on MNIST, as an importable library for the DVC stages."""
