"""Helpers for the course *Evaluating and optimizing PyTorch models, from scratch*.

One module per concept; every function mirrors the torch / scikit-learn built-in it is verified
against (same names, defaults and semantics), and each module registers its checks with
`helpers.verify` so that `python -m helpers.verify` proves the whole package on this machine.
"""

__version__ = "0.1.0"
