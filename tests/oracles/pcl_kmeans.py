# ruff: noqa: B020, E741
"""PCL's ``run_kmeans`` (seed 001_*), as a test oracle.

Ported with: a CPU ``faiss.IndexFlatL2`` instead of ``GpuIndexFlatL2`` (no
``StandardGpuResources``), no ``.cuda()`` (tensors stay on the CPU), ``verbose`` off, and
``args.num_cluster`` / ``args.temperature`` as parameters (``first_seed`` shifts the
seed that the seed's ``enumerate`` gives; 0 as in PCL). Everything else, including the
per-cluster Python loops and the density formula, is the seed's.
"""

import faiss
import numpy as np
import torch
import torch.nn as nn


def run_kmeans(x, num_cluster=(10,), temperature=0.2, first_seed=0):
    """
    Args:
        x: data to be clustered
    """

    results = {'im2cluster': [], 'centroids': [], 'density': [], 'raw_centroids': [], 'D': []}

    for seed, num_cluster in enumerate(num_cluster, start=first_seed):
        # intialize faiss clustering parameters
        d = x.shape[1]
        k = int(num_cluster)
        clus = faiss.Clustering(d, k)
        clus.verbose = False
        clus.niter = 20
        clus.nredo = 5
        clus.seed = seed
        clus.max_points_per_centroid = 1000
        clus.min_points_per_centroid = 10

        index = faiss.IndexFlatL2(d)

        clus.train(x, index)

        D, I = index.search(x, 1)  # for each sample, find cluster distance and assignments
        im2cluster = [int(n[0]) for n in I]

        # get cluster centroids
        centroids = faiss.vector_to_array(clus.centroids).reshape(k, d)

        # sample-to-centroid distances for each cluster
        Dcluster = [[] for c in range(k)]
        for im, i in enumerate(im2cluster):
            Dcluster[i].append(D[im][0])

        # concentration estimation (phi)
        density = np.zeros(k)
        for i, dist in enumerate(Dcluster):
            if len(dist) > 1:
                d = (np.asarray(dist)**0.5).mean() / np.log(len(dist) + 10)
                density[i] = d

        # if cluster only has one point, use the max to estimate its concentration
        dmax = density.max()
        for i, dist in enumerate(Dcluster):
            if len(dist) <= 1:
                density[i] = dmax

        density = density.clip(np.percentile(density, 10), np.percentile(density, 90))  # clamp extreme values for stability
        density = temperature * density / density.mean()  # scale the mean to temperature

        results['raw_centroids'].append(centroids.copy())
        results['D'].append(D[:, 0].copy())

        # convert to Tensors (CPU here)
        centroids = torch.Tensor(centroids)
        centroids = nn.functional.normalize(centroids, p=2, dim=1)

        im2cluster = torch.LongTensor(im2cluster)
        density = torch.Tensor(density)
        results['centroids'].append(centroids)
        results['density'].append(density)
        results['im2cluster'].append(im2cluster)

    return results
