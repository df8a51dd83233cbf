"""Networks shared by several stages, and nothing that trains a generator.

- :mod:`~synthlens.nets.classifiers`: the image classifiers (``small_cnn``, ``resnet18``) and
  the one training loop behind the utility classifiers, the in-domain feature encoder and
  the label-consistency judge;
- :mod:`~synthlens.nets.vqvae2`: the VQ-VAE-2 autoencoder, trained by the ``vqvae2``
  generator family and by the ``vqvae_codes`` feature extractor;
- :mod:`~synthlens.nets.quantizer`: the EMA vector quantiser of VQ-VAE-2 and of the VQ first
  stage of latent diffusion;
- :mod:`~synthlens.nets.schedule`: the learning-rate schedule those trainings share.

Stages import from here (``features``, ``utility``, ``generators``); this package imports
only the data layer and :mod:`synthlens.device`.
"""
