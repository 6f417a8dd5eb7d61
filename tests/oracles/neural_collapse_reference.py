# ruff: noqa
"""rhubarbwu/neural-collapse, the reference implementation of neural-collapse measurements
(Papyan, Han & Donoho 2020; Kothapalli 2023), as a test oracle.

Repository: https://github.com/rhubarbwu/neural-collapse, commit c05a0b80d6bc6e8e2e102f2180f1f33b2c9605fd
(MIT licence). Files, in this order: neural_collapse/util.py, neural_collapse/accumulate.py,
neural_collapse/kernels.py, neural_collapse/measure.py.

Changed to run here, nothing else:
- the four modules are concatenated into this one file, so their relative imports
  (``from .util import ...``, ``from .accumulate import ...``, ``from .kernels import ...``)
  are removed; each file's own imports are kept where they stand.
"""

# ---------------------------------------------------------------- neural_collapse/util.py
from hashlib import sha256

import torch as pt
import torch.linalg as la
from torch import Tensor

hashify = lambda O: sha256(O.cpu().numpy().tobytes()).hexdigest()
resolve = lambda A, B: B if not A or A == B else None
normalize = lambda x: x / (la.norm(x, dim=-1, keepdim=True) + pt.finfo(x.dtype).eps)


def tiling(data: Tensor, kernel: callable, tile_size: int = None) -> Tensor:
    """Create a grid of kernel evaluations based on tiles of the input data.

    The function divides the input tensor `data` into overlapping tiles of
    size `tile_size` and applies the specified kernel function to each pair
    of tiles. The results are stored in a 2D tensor that represents the
    evaluations of the kernel on each pair of tiles.

    Args:
        data (Tensor): Input tensor to be tiled.
        kernel (callable): Function that takes two tiles as input and
            returns a tensor representing their kernel evaluation.
        tile_size (int, optional): Size of the tiles to be extracted from the
            data. Set tile_size << K to avoid OOM. Defaults to None.

    Returns:
        Tensor: Matrix where the element at position (i, j) is the result
            of applying the kernel to the i-th and j-th tiles of the input.
    """
    N = len(data)
    outgrid = pt.zeros((N, N), device=data.device)
    if not tile_size:
        tile_size = N
    n_tiles = (N + tile_size - 1) // tile_size

    for i in range(n_tiles):
        i0, i1 = i * tile_size, min((i + 1) * tile_size, N)
        tile_i = data[i0:i1]
        for j in range(n_tiles):
            j0, j1 = j * tile_size, min((j + 1) * tile_size, N)
            tile_j = data[j0:j1]
            outgrid[i0:i1, j0:j1] = kernel(tile_i, tile_j)

    return outgrid


def symm_reduce(data: Tensor, reduce: callable = pt.sum) -> Tensor:
    """Compute a symmetric reduction of the upper triangle of a square tensor.

    This function computes a specified reduction the upper triangle of a
    square tensor `data`, ignoring the diagonal. It also handles the case of
    an even-sized tensor by including the middle row in the reduction.

    Args:
        data (Tensor): Square matrix from which to compute the reduction.
        reduce (callable, optional): A callable function to apply for the
            reduction. Defaults to `pt.sum`.

    Returns:
        Tensor: Mean of the reduction applied to the upper triangle of the
            symmetric tensor.
    """
    N = data.shape[0]
    total = 0

    assert N == data.shape[1]
    for i in range((N - 1) // 2):
        upper = data[i][i + 1 :]
        lower = data[N - i - 2][N - i - 1 :]
        folded = pt.cat((upper, lower))
        total += reduce(folded)
    if N % 2 == 0:
        row = data[N // 2 - 1][N // 2 :]
        total += reduce(row)

    return total / (N * (N - 1) / 2)

# ---------------------------------------------------------- neural_collapse/accumulate.py
from abc import ABCMeta, abstractmethod
from typing import List, Tuple, Union

import torch as pt
from torch import Tensor



class Accumulator(metaclass=ABCMeta):
    """Base class for accumulators that track sample counts and totals.

    This abstract class provides the foundation for different types of
    accumulators that calculate statistics based on input tensors. It manages
    sample counts for each class and includes methods to filter indices based
    on sample counts, accumulate data, and compute averages.

    Attributes:
        n_classes (int): Number of classes.
        d_vectors (int): Dimensionality of the input vectors.
        ctype (torch.dtype): Data type for counts.
        dtype (torch.dtype): Data type for totals and computations.
        device (Union[str, torch.device]): Device on which tensors are stored.
        ns_samples (Tensor): Tensor to store per-class sample counts.

    Methods:
        filter_indices_by_n_samples(minimum=0, maximum=None):
            Filters class indices based on a minimum and maximum sample count.
        class_idxs(X, Y):
            Increment sample counts and return per-class sample indices.
        compute(idxs=None, weighted=False):
            Computes averages of accumulated samples (totals/counts).
        accumulate(*args):
            Abstract method to be implemented by subclasses to define specific
            accumulation behavior.
    """

    def __init__(
        self,
        n_classes: int,
        d_vectors: int,
        device: Union[str, pt.device] = "cpu",
        dtype: pt.dtype = pt.float32,
        ctype: pt.dtype = pt.int32,
    ):
        self.n_classes, self.d_vectors = n_classes, d_vectors
        self.ctype, self.dtype, self.device = ctype, dtype, device
        self.ns_samples = pt.zeros(self.n_classes, dtype=ctype).to(device)  # (K)

    def filter_indices_by_n_samples(
        self, minimum: int = 0, maximum: int = None
    ) -> Union[Tensor, float]:
        idxs = self.ns_samples.squeeze() >= minimum
        assert pt.all(minimum <= self.ns_samples[idxs])
        if maximum:
            idxs &= self.ns_samples.squeeze() < maximum
            assert pt.all(self.ns_samples[idxs] < maximum)

        filtered = idxs.nonzero().squeeze()

        return filtered

    def class_idxs(self, X: Tensor, Y: Tensor) -> Union[Tensor, float]:
        Y = Y.squeeze()
        assert X.shape[0] == Y.shape[0]
        Y_range = pt.arange(self.n_classes, dtype=self.ctype)
        idxs = (Y[:, None] == Y_range.to(Y.device)).to(self.device)
        self.ns_samples += pt.sum(idxs, dim=0, dtype=self.ctype)[:, None].squeeze()
        return idxs

    def compute(
        self, idxs: List[int] = None, weighted: bool = False
    ) -> Tuple[Tensor, Tensor]:
        ns_samples, totals = self.ns_samples, self.totals  # (K), (K,D)
        if idxs is not None:
            ns_samples, totals = ns_samples[idxs], totals[idxs]  # (K'), (K',D)
        if len(self.totals.shape) > 1:
            ns_samples = ns_samples.unsqueeze(1)

        eps = pt.finfo(self.dtype).eps
        avg = totals / (ns_samples + eps).to(self.dtype)  # (K, D)
        if weighted:
            avg_G = ns_samples.to(self.dtype) @ avg / (ns_samples.sum() + eps)  # (D)
        else:
            avg_G = avg.mean(dim=0)  # (D)

        return avg, avg_G

    @abstractmethod
    def accumulate(self, *args):
        pass


class MeanAccumulator(Accumulator):
    """Accumulator that computes mean vectors for each class.

    Inherits from the Accumulator class: accumulates the totals for each
    class to compute the mean of the input vectors.

    Methods:
        accumulate(X, Y):
            Increment and return per-class mean totals and sample counts.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        dtype, device = self.dtype, self.device
        self.totals = pt.zeros(self.n_classes, self.d_vectors, dtype=dtype).to(device)

    def accumulate(self, X: Tensor, Y: Tensor) -> Tuple[Tensor, Tensor]:
        idxs = self.class_idxs(X, Y).mT.to(self.dtype)  # (K,B)
        self.totals += idxs @ X.to(device=self.device, dtype=self.dtype)  # (K,D)
        return self.ns_samples, self.totals


class CovarAccumulator(Accumulator):
    """Accumulator that computes covariance matrices for each class.

    Inherits from the Accumulator class: accumulates the differences between
    input vectors and class-specific mean vectors to compute covariance.

    Attributes:
        hash_M (hash): Hash of the mean vectors for ensuring consistency.
        totals (Tensor): Matrix to store the accumulated covariance totals.

    Methods:
        accumulate(X, Y, M):
            Increment covariance totals with squared differences between
            input vectors and their label-corresponding class means.
        compute(idxs=None):
            Computes the average covariance matrix from accumulated totals.
    """

    def __init__(self, *args, M: Tensor = None, **kwargs):
        super().__init__(*args, **kwargs)
        D, dtype, device = self.d_vectors, self.dtype, self.device
        self.hash_M = None if M is None else hashify(M)
        self.totals = pt.zeros(D, D, dtype=dtype).to(device)

    def accumulate(self, X: Tensor, Y: Tensor, M: Tensor) -> Tuple[Tensor, Tensor]:
        self.hash_M = resolve(self.hash_M, hashify(M))
        assert self.hash_M

        M = M.to(self.device, self.dtype)
        assert M.shape == (self.n_classes, self.d_vectors)

        self.class_idxs(X, Y)
        diff = X.to(self.device) - M[Y]  # (B,D)
        self.totals += diff.mT @ diff  # (D,D)

        return self.ns_samples, self.totals

    def compute(self, idxs: List[int] = None) -> Tuple[Tensor, Tensor]:
        ns_samples, totals = self.ns_samples, self.totals  # (K), (K,D)
        if idxs is not None:
            ns_samples, totals = ns_samples[idxs], totals[idxs]

        eps = pt.finfo(self.dtype).eps
        return totals / (ns_samples.sum() + eps).to(self.dtype)


class VarNormAccumulator(Accumulator):
    """Accumulator that computes the variance norms for each class.

    Inherits from the Accumulator class and calculates the variance of input
    vectors relative to class-specific mean vectors.

    Attributes:
        hash_M (hash): Hash of the mean vectors for ensuring consistency.
        totals (Tensor): A tensor to hold the accumulated variance totals.

    Methods:
        accumulate(X, Y, M):
            Increment per-class totals with norms of squared differences
            between input vectors and their label-corresponding class means.
    """

    def __init__(self, *args, M: Tensor = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hash_M = None if M is None else hashify(M)
        self.totals = pt.zeros(self.n_classes, dtype=self.dtype).to(self.device)

    def accumulate(self, X: Tensor, Y: Tensor, M: Tensor) -> Tuple[Tensor, Tensor]:
        self.hash_M = resolve(self.hash_M, hashify(M))
        assert self.hash_M

        M = M.to(self.device, self.dtype)
        assert M.shape == (self.n_classes, self.d_vectors)

        idxs = self.class_idxs(X, Y).mT.to(self.dtype)  # (K,B)
        diffs_sq = (X.to(self.device) - M[Y]) ** 2  # (B,D)
        self.totals += (idxs @ diffs_sq).sum(dim=-1)  # (K,D)

        return self.ns_samples, self.totals


class DecAccumulator(Accumulator):
    """Accumulator that computes decision hits from multiple classifiers.

    Inherits from the Accumulator class and integrates results from
    nearest-class center and linear classifiers to track hits for each class.

    Attributes:
        hash_M (hash): Hash of the mean vectors for ensuring consistency.
        hash_W (hash): Hash of the linear classifier weights for consistency.
        index (IndexFlatL2): FAISS index for efficient nearest neighbors.
        totals (Tensor): Tensor of per-class hit counts.

    Methods:
        create_index(M):
            Initializes a FAISS (if installed) index with the provided mean
                vectors. If FAISS not found, do nothing.
        accumulate(X, Y, W, M=None):
            Updates the totals based on hits between the nearest-class center
            and linear classifiers.
        compute(idxs=None, weighted=True):
            Computes per-class and global classifier decision agreement rates.
    """

    def __init__(self, *args, M: Tensor = None, W: Tensor = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hash_M = None if M is None else hashify(M)
        self.hash_W = None if W is None else hashify(W)
        self.index = None
        self.totals = pt.zeros(self.n_classes, dtype=self.ctype).to(self.device)

    def create_index(self, M: Tensor):
        self.hash_M = resolve(self.hash_M, hashify(M))
        assert self.hash_M

        try:
            from faiss import IndexFlatL2

            self.index = IndexFlatL2(self.d_vectors)
            self.index.add(M.cpu().numpy())
        except:
            self.index = None

    def accumulate(
        self,
        X: Tensor,
        Y: Tensor,
        W: Tensor,
        M: Tensor = None,
    ) -> Tuple[Tensor, Tensor]:

        self.hash_W = resolve(self.hash_W, hashify(W))
        assert self.hash_W
        assert W.shape == (self.n_classes, self.d_vectors)
        X, W = X.to(self.device, self.dtype), W.to(self.device, self.dtype)

        # NCC classifier decisions
        if self.index:  # using FAISS index
            _, I = self.index.search(X.cpu().numpy(), 1)
            Y_ncc = pt.tensor(I).to(self.device).squeeze()  # (B)
        else:  # manual near-class centre, using given means
            assert type(M) == Tensor
            self.hash_M = resolve(self.hash_M, hashify(M))
            assert self.hash_M
            assert M.shape == (self.n_classes, self.d_vectors)
            M = M.to(self.device, self.dtype)

            dots = pt.inner(X, M)  # (B,K)
            feats, centre = pt.norm(X, dim=-1) ** 2, pt.norm(M, dim=-1) ** 2  # (B), (K)
            dists = feats.unsqueeze(1) + centre.unsqueeze(0) - 2 * dots  # (B,K)
            Y_ncc = dists.argmin(dim=-1)  # (B)

        # linear classifier decisions
        Y_lin = (X @ W.mT).argmax(dim=-1)  # (B)

        # count matches between classifiers
        matches = (Y_lin == Y_ncc).to(self.ctype)  # (B)
        self.class_idxs(X, Y)
        self.totals.scatter_add_(0, Y.to(self.device, pt.int64), matches)

        return self.ns_samples, self.totals

# ------------------------------------------------------------- neural_collapse/kernels.py
from math import copysign
from typing import Tuple

import torch as pt
from torch import Tensor



def class_dist_norm_vars(
    V_norms: Tensor,
    M: Tensor,
    dist_exp: float = 1.0,
    tile_size: int = None,
) -> Tensor:
    """Compute the matrix grid of class-distance normalized variances (CDNV).
    This metric reflects pairwise variability adjusted for mean distances.
    Galanti et al. (2021): https://arxiv.org/abs/2112.15121

    Arguments:
        V_norms (Tensor): Matrix of within-class variance norms.
        M (Tensor): Matrix of feature (or class mean) embeddings.
        dist_exp (int): Power with which to exponentiate the distance
            normalizer. A greater power further diminishes the contribution of
            mutual variability between already-disparate classes. Defaults to
            1, equivalent to the CDNV introduced by Galanti et al. (2021).
        tile_size (int, optional): Size of the tile for kernel computation.
            Set tile_size << K to avoid OOM. Defaults to None.

    Returns:
        Tensor: A tensor representing the matrix grid of pairwise CDNVs.
    """
    V_norms = V_norms.view(-1, 1)
    bundled = pt.cat((M, V_norms), dim=1)

    def kernel(tile_i, tile_j):
        vars_i, vars_j = tile_i[:, -1], tile_j[:, -1]
        var_avgs = (vars_i.unsqueeze(1) + vars_j).squeeze() / 2

        M_i, M_j = tile_i[:, :-1], tile_j[:, :-1]

        M_diff = M_i.unsqueeze(1) - M_j
        M_diff_norm_sq = pt.sum(M_diff * M_diff, dim=-1)
        return var_avgs.squeeze(0) / (M_diff_norm_sq**dist_exp)

    return tiling(bundled, kernel, tile_size)


def dist_kernel(data: Tensor, tile_size: int = None) -> Tensor:
    """Compute the grid of pairwise vector distances across a set of vectors.

    Arguments:
        data (Tensor): Input data tensor across which to apply the kernel.
        tile_size (int, optional): Size of the tile for kernel computation.
            Set tile_size << K to avoid OOM. Defaults to None.
    """
    kernel = lambda tile_i, tile_j: (tile_i.unsqueeze(1) - tile_j).norm(dim=-1)
    return tiling(data, kernel, tile_size)


def log_kernel(data: Tensor, exponent: int = -1, tile_size: int = None) -> Tensor:
    """Compute the grid of pairwise logarithmic  distances across vectors.
    Liu et al. (2023): https://arxiv.org/abs/2303.06484

    Arguments:
        data (Tensor): Input data tensor across which to apply the kernel.
        exponent (int, optional): Power with which to exponentiate the
            distance norm before the logarithm. Defaults to -1 (inverse).
        tile_size (int, optional): Size of the tile for kernel computation.
            Set tile_size << K to avoid OOM. Defaults to None.
    """

    def kernel(tile_i, tile_j):
        diff = tile_i.unsqueeze(1) - tile_j
        diff_norms = diff.norm(dim=-1)
        return (diff_norms ** (exponent)).log()

    return tiling(data, kernel, tile_size)


def riesz_kernel(data: Tensor, tile_size: int = None) -> Tensor:
    """Compute the grid of Riesz distances across vectors.
    Liu et al. (2023): https://arxiv.org/abs/2303.06484

    Arguments:
        data (Tensor): Input data tensor across which to apply the kernel.
        tile_size (int, optional): Size of the tile for kernel computation.
            Set tile_size << K to avoid OOM. Defaults to None.
    """
    S = data.shape[-1] - 2

    def kernel(tile_i, tile_j):
        diff = tile_i.unsqueeze(1) - tile_j
        diff_norms = diff.norm(dim=-1)
        return copysign(1, S) * diff_norms ** (-S)

    return tiling(data, kernel, tile_size)


def kernel_grid(
    M: Tensor,
    m_G: Tensor = 0,
    kernel: callable = dist_kernel,
    tile_size: int = None,
) -> Tensor:
    """Compute the grid from the kernel function on pairwise interactions
    between embeddings. Self-interactions are excluded.

    Arguments:
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.
        kernel (callable, optional): The kernel with which to compute
            interactions. Defaults to the inner product. Other common
            functions include the logarithmic or Riesz distance kernels.
        tile_size (int, optional): Size of the tile for kernel computation.
            Set tile_size << K to avoid OOM. Defaults to None.

    Returns:
        float: Average of pairwise kernel interactions.
        float: Variance of pairwise kernel interactions.
    """
    M_centred_normed = normalize(M - m_G)
    return kernel(M_centred_normed, tile_size=tile_size)


def kernel_stats(
    M: Tensor,
    m_G: Tensor = 0,
    kernel: callable = dist_kernel,
    tile_size: int = None,
) -> Tuple[float, float]:
    """Compute the average and variance of a kernel function on pairwise
    interactions between embeddings. Self-interactions are excluded.
    Liu et al. (2023): https://arxiv.org/abs/2303.06484

    Arguments:
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.
        kernel (callable): Kernel function with which to compute
            interactions. Defaults to the inner product. Other common
            functions include the logarithmic or Riesz distance kernels.
        tile_size (int, optional): Size of the tile for kernel computation.
            Set tile_size << K to avoid OOM. Defaults to None.

    Returns:
        float: Average of pairwise kernel interactions.
        float: Variance of pairwise kernel interactions.
    """
    grid: Tensor = kernel_grid(M, m_G, kernel, tile_size)
    avg = symm_reduce(grid)
    var = symm_reduce(grid, lambda row: pt.sum((row - avg) ** 2))

    return avg.item(), var.item()

# ------------------------------------------------------------- neural_collapse/measure.py
from math import sqrt
from typing import List

import numpy as np
import torch as pt
import torch.linalg as la
from scipy.sparse.linalg import svds
from torch import Tensor
from torch.nn.functional import cosine_similarity



def covariance_ratio(
    V_intra: Tensor, M: Tensor, m_G: Tensor = 0, metric: str = "pinv"
) -> float:
    """Compute the ratio between the within-class (intra) and between-class
    (inter) covariances, using some empirical metric.
    Papyan et al. (2020): https://doi.org/10.1073/pnas.2015509117;
    Han et al. (2022): https://arxiv.org/abs/2106.02073;
    Tirer et al. (2023): https://proceedings.mlr.press/v202/tirer23a;

    Arguments:
        V_intra (Tensor): Matrix of within-class covariance.
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.
        metric (str, optional): Empirical metric for within-class variability.
            Defaults to "pinv" for trace of the MP pseudoinverse left-product;
            "svd" approximates the pinv left-product with SVD (top-K);
            "quotient" computes the quotient of traces of covariances;

    Returns:
        float: Ratio of between-class/within-class covariances.
    """
    (K, _), M_centred = M.shape, M - m_G
    V_inter = M_centred.mT @ M_centred / K

    if metric == "pinv":  # Papyan et al. (2020)
        V_intra = V_intra.to(V_inter.device)
        prod = la.pinv(V_inter) @ V_intra
        return pt.trace(prod).item() / K

    if metric == "svd":  # Han et al. (2022)
        V_intra, V_inter = V_intra.cpu().numpy(), V_inter.cpu().numpy()
        eig_vecs, eig_vals, _ = svds(V_inter, k=K - 1)
        inv_Sb = eig_vecs @ np.diag(eig_vals ** (-1)) @ eig_vecs.T
        return float(np.trace(V_intra @ inv_Sb)) / K

    if metric == "quotient":  # Tirer et al. (2023)
        return pt.trace(V_intra).item() / pt.trace(V_inter).item()

    raise NotImplementedError


def variability_cdnv(
    V_norms: Tensor, M: Tensor, dist_exp: float = 1.0, tile_size: int = None
) -> float:
    """Compute the average class-distance normalized variances (CDNV).
    This metric reflects pairwise variability adjusted for mean distances.
    Galanti et al. (2021): https://arxiv.org/abs/2112.15121;

    Arguments:
        V_norms (Tensor): Matrix of within-class variance norms for the classes.
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        dist_exp (int): The power with which to exponentiate the distance
            normalizer. A greater power further diminishes the contribution of
            mutual variability between already-disparate classes. Defaults to
            1, equivalent to the CDNV introduced by Galanti et al. (2021).
        tile_size (int, optional): Size of the tile for kernel computation.
            Set tile_size << K to avoid OOM. Defaults to None.

    Returns:
        float: The average CDNVs across all class pairs.
    """
    kernel_grid = class_dist_norm_vars(V_norms, M, dist_exp, tile_size)
    avg = symm_reduce(kernel_grid, pt.sum)
    return avg.item()


def mean_norms(M: Tensor, m_G: Tensor = 0, post_funcs: List[callable] = []) -> Tensor:
    """Compute the norms of (mean) embeddings (centred).

    Arguments:
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.
        post_funcs (List[callable], optional): Functions (Tensor -> Tensor)
            applied to the computed norms. Defaults to [].

    Returns:
        Tensor: A vector containing the norms for each class.
    """
    M_centred = M - m_G
    result = M_centred.norm(dim=-1)  # (K)
    for post_func in post_funcs:
        result = post_func(result)
    return result


def interference_grid(M: Tensor, m_G: Tensor = 0) -> Tensor:
    """Compute the pairwise interference grid between (mean) embeddings.

    Arguments:
        M (Tensor): The matrix of feature (or class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.

    Returns:
        Tensor: A matrix representing pairwise interferences.
    """
    M_centred = M - m_G
    return pt.inner(M_centred, M_centred)  # (K,K)


def similarities(W: Tensor, M: Tensor, m_G: Tensor = 0, cos: bool = False) -> Tensor:
    """Compute the (cosine or dot-product) similarities between a set of (mean)
    embeddings and classifiers vectors.

    Arguments:
        W (Tensor): Weight vectors of the classifiers. Computations will be
            performed on the device of W.
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.
        cos (bool, optional): Whether to use cosine similarity. Defaults to
            False, using dot-product similarity.

    Returns:
        Tensor: Per-class similarities between embeddings and classifiers.
    """
    M_centred = (M - m_G).to(W.device)
    if cos:
        return cosine_similarity(W, M_centred.to(W.dtype))
    return (W * M_centred).sum(dim=1)


def distance_norms(W: Tensor, M: Tensor, m_G: Tensor = 0, norm: bool = True) -> Tensor:
    """Compute the distance between (mean) embeddings and classifier vectors.

    Arguments:
        M (Tensor): Feature (e.g. class mean) embeddings vectors.
        W (Tensor): Weight vectors of the classifiers. Computations will be
            performed on the device of W.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.
        norm (bool, optional): Whether to normalize vectors before taking
            their distances. Defaults to True, allowing two dual spaces.

    Returns:
        Tensor: Per-class distances between embeddings and classifiers.
    """
    M_centred = (M - m_G).to(W.device)
    if norm:
        W, M_centred = normalize(W), normalize(M_centred)
    return (W - M_centred).norm(dim=-1)


def structure_error(A: Tensor, B: Tensor) -> float:
    """Compute the error between the cross-coherence structure formed
    by two sets of vectors and the ideal simplex equiangular tight frame
    (ETF), expressed as the matrix norm of their difference.
    Kothapalli (2023): https://arxiv.org/abs/2206.04041

    Arguments:
        A (Tensor): First tensor for comparison.
        B (Tensor): Second tensor for comparison.

    Returns:
        float: Scalar error of excess incoherence from simplex ETF.
    """
    (K, _) = A.shape

    struct = B.to(A.device) @ A.mT  # (K,K)
    struct /= la.matrix_norm(struct)

    struct += 1 / K / sqrt(K - 1)
    struct.diagonal().sub_(1 / sqrt(K - 1))

    return la.matrix_norm(struct).item()


def simplex_etf_error(M: Tensor, m_G: Tensor = 0) -> float:
    """Compute the excess cross-class incoherence within a set of (mean)
    embeddings, relative to the ideal simplex ETF.
    Kothapalli (2023): https://arxiv.org/abs/2206.04041

    Arguments:
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.

    Returns:
        float: Scalar error of excess incoherence from simplex ETF.
    """
    M_centred = M - m_G
    return structure_error(M_centred, M_centred)


def self_duality_error(W: Tensor, M: Tensor, m_G: Tensor = 0) -> float:
    """Compute the excess cross-class incoherence between a set of (mean)
    embeddings and classifiers, relative to the ideal simplex ETF.
    Kothapalli (2023): https://arxiv.org/abs/2206.04041

    Arguments:
        W (Tensor): Weight vectors of the classifiers.
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G (Tensor, optional): Bias (e.g. global mean) vector. Defaults to 0.

    Returns:
        float: Scalar error of excess incoherence from simplex ETF.
    """
    M_centred = M - m_G
    return structure_error(M_centred, W)


def clf_ncc_agreement(
    accum: DecAccumulator, indices: List[int] = None, weighted: bool = True
) -> float:
    """Compute the rate of agreement between the linear and the implicit
    nearest-class centre (NCC) classifiers: percentage of hits over Ns samples.

    Arguments:
        accum (DecAccumulator): Tracker of per-class sample counts and hits.
        indices (List[int], optional): Indices of specific classes to include
            in agreement analysis. Defaults to [], to include all classes.
        weighted (bool, optional): Whether to weigh class hit rates by numbers
            of samples. Defaults to True.

    Returns:
        float: The rate of agreement as a float, or None if an error occurs
            (e.g. neither hits nor misses given, or shape mismatch)
    """
    _, global_agree_rates = accum.compute(indices, weighted)
    return global_agree_rates.item()


def orthogonality_deviation(M: Tensor, m_G_ood: Tensor = 0) -> float:
    """Compute the average normalized deviation of means from the global mean
    embedding from out-of-distribution (OoD) data.
    Ammar et al. (2024): https://arxiv.org/abs/2310.06823;

    Arguments:
        M (Tensor): Matrix of feature (e.g. class mean) embeddings.
        m_G_ood (Tensor, optional): Out-of-Distribution bias (e.g. global
            mean) vector. Defaults to 0.
    Returns:
        float: Average normalized deviation of means from the OoD global mean.
    """
    deviations = pt.abs(similarities(M, m_G_ood, cos=True))  # (K)
    return pt.mean(deviations).item()
