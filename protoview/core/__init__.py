"""protoview's science core: plain Python, torch, numpy, faiss, umap and h5py. Never Qt."""
