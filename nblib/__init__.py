"""nblib: the small library behind "Why Deep Networks Are Hard to Train".

One idea per module, and data flows one way (data -> networks -> training/metrics -> plots): a
module imports only modules before it in that flow (``tests/test_flow.py`` checks every import).

Used by every chapter (numpy only):

- ``nblib.data``         loading MNIST (Nielsen's 50k/10k/10k split), offline-friendly
- ``nblib.networks``     Nielsen's ``network2`` sigmoid network, vectorised
- ``nblib.kernels``      one epoch of network2's SGD compiled with numba (optional)
- ``nblib.training``     mini-batch SGD and full-batch GD that return their history as plain data
- ``nblib.metrics``      learning speed per layer (chapter 1) and other measurements
- ``nblib.plots``        figures and tables drawn from that plain data; ``glue`` for the prose
- ``nblib.checks``       the argument checks every module shares
- ``nblib.progress``     the one progress bar (off when NBLIB_PROGRESS=0)
- ``nblib.stats``        means over seeds that skip what did not finish, geometric means, Spearman
- ``nblib.runner``       jobs of training on worker processes, costliest first
- ``nblib.chain``        gradients as products of per-layer factors (chapter 2)
- ``nblib.degeneracy``   singular-value measures of degeneracy (chapter 3)
- ``nblib.interactive``  slider figures: live widgets in Jupyter, pre-rendered in the HTML book
- ``nblib.exercises``    checkers that give readers feedback on their answers, and grade them
                         (one module per chapter: vanishing, unstable, degeneracy, remedies, recurrent)

Chapters 2 to 5 (these modules import torch):

- ``nblib.torchutil``    the device (a GPU when present), seeding, MNIST as tensors
- ``nblib.stacked``      many small sigmoid networks trained side by side (chapter 2)
- ``nblib.linear``       deep linear and residual networks, folded/orthogonal inits (chapter 3)
- ``nblib.random_nets``  random deep nonlinear networks at initialisation (chapter 3)
- ``nblib.initialisation``  activations, initialisation schemes and the moments they predict (chapter 4)
- ``nblib.probe``        a gradient-health probe for any ``torch.nn.Module`` (chapter 4)
- ``nblib.testbed``      one deep MLP on MNIST with every remedy switchable (chapter 4)
- ``nblib.testbed_batched``  many testbed networks trained at once as one batched model, and the
                         ``Runner`` that trains a chapter's configs x seeds that way (chapter 4)
- ``nblib.recurrent``    RNN, LSTM and GRU on the adding problem (chapter 5)
- ``nblib.recurrent_batched``  many recurrent networks trained at once, and ``train_all`` (chapter 5)

``nblib.sphinx_offline`` is the book's Sphinx extension (offline MathJax), not used by chapters.

Importing nblib never imports torch: chapters that need torch import it themselves.
"""

__version__ = "0.1.0"
