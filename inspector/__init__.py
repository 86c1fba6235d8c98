"""causallm-inspect: see which tokens a causal LM is trained on, and what it learns.

Importing the package is cheap: no torch, no transformers, no textual.
"""

__version__ = "0.1.0"
