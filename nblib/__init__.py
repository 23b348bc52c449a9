"""nblib: the small library behind "Why Deep Networks Are Hard to Train".

One idea per module, and data flows one way:

- ``nblib.data``      loading MNIST (Nielsen's 50k/10k/10k split), offline-friendly
- ``nblib.networks``  Nielsen's ``network2`` sigmoid network, vectorised
- ``nblib.training``  mini-batch SGD and full-batch GD that return their history as plain data
- ``nblib.metrics``   learning speed per layer (chapter 1) and other measurements
- ``nblib.plots``     figures drawn from that plain data

Importing nblib never imports torch: chapters that need torch import it themselves.
"""

__version__ = "0.1.0"
