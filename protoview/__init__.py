"""protoview: watch a classifier's representation move.

Importing ``protoview`` is cheap: torch, umap, faiss and h5py are imported only where used.
"""

__version__ = "0.1.0"
