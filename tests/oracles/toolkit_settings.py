# ruff: noqa
"""The toolkit's test settings (the sequence of domains and severities, the resets, the samples
of each test loader) as a test oracle.

Repository: github.com/mariodoebler/test-time-adaptation, commit 8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1.
Files: ``classification/test_time.py`` (``evaluate``, lines 17-130: the settings, the domain
loop, the severities of ``gradual``, the resets), ``classification/datasets/data_loading.py``
(``get_test_loader``, lines 104-235; ``sort_by_dirichlet``, lines 329-386) and
``classification/datasets/corruptions_datasets.py`` (``create_cifarc_dataset``), verbatim
where they decide the test sequence.

Changed to run here, nothing else:
- ``evaluate`` takes the config values it reads as arguments (``cfg.SETTING``,
  ``cfg.CORRUPTION.DATASET``, ``.TYPE``, ``.SEVERITY``, ``.NUM_EX``, ``cfg.RNG_SEED``,
  ``cfg.TEST.DELTA_DIRICHLET``, ``cfg.DATA_DIR``); the model, the adaptation method, logging
  and the accuracy are left out: ``model.reset()`` is recorded (``reset=True``) and each
  test loader is recorded as the samples it would yield (``get_accuracy`` iterates them in
  order, ``shuffle=False``), one dict per loader: domain name, severity, reset, samples;
- ``get_test_loader`` keeps the CIFAR-C branch and the sample ordering (seeding, shuffle,
  ``NUM_EX`` sub-sampling, sorting) and returns ``test_dataset.samples`` instead of a
  ``DataLoader`` (which iterates them in that order: ``shuffle=False``, ``drop_last=False``);
  the transform and the other datasets' branches are left out;
- RobustBench's ``load_cifar10c`` / ``load_cifar100c`` (which ``create_cifarc_dataset``
  calls) are replaced by :func:`load_cifarc`, which reads the same layout the same way
  (``labels.npy`` and ``<corruption>.npy``, severity ``s`` = rows ``(s-1)n .. sn-1``, labels
  ``[:n]``) with ``n`` = a fifth of the file's rows instead of RobustBench's fixed 10000, so
  that small generated files can stand in for the release; ``CustomCifarDataset`` is reduced
  to its ``samples`` list.
"""

import os
import random
import time

import numpy as np
import torch


def load_cifarc(severity, data_dir, corruptions):
    labels = np.load(os.path.join(data_dir, "labels.npy"))
    x_test_list, y_test_list = [], []
    for corruption in corruptions:
        images_all = np.load(os.path.join(data_dir, corruption + ".npy"))
        n_total_cifar = images_all.shape[0] // 5
        images = images_all[(severity - 1) * n_total_cifar:severity * n_total_cifar]
        x_test_list.append(images)
        y_test_list.append(labels[:n_total_cifar])
    x_test = np.concatenate(x_test_list).transpose((0, 3, 1, 2))
    y_test = np.concatenate(y_test_list)
    return torch.tensor(x_test, dtype=torch.float32) / 255., torch.tensor(y_test)


class CustomCifarDataset:
    def __init__(self, samples, transform=None):
        self.samples = samples
        self.transform = transform

    def __len__(self):
        return len(self.samples)


# ---------------------------------------------------------------- corruptions_datasets.py
def create_cifarc_dataset(
    dataset_name: str = 'cifar10_c',
    severity: int = 5,
    data_dir: str = './data',
    corruption: str = "gaussian_noise",
    corruptions_seq=None,
    transform=None,
    setting: str = 'continual'):

    domain = []
    x_test = torch.tensor([])
    y_test = torch.tensor([])
    corruptions_seq = corruptions_seq if "mixed_domains" in setting else [corruption]

    for cor in corruptions_seq:
        if dataset_name == 'cifar10_c':
            x_tmp, y_tmp = load_cifarc(severity=severity,
                                       data_dir=data_dir,
                                       corruptions=[cor])
        elif dataset_name == 'cifar100_c':
            x_tmp, y_tmp = load_cifarc(severity=severity,
                                       data_dir=data_dir,
                                       corruptions=[cor])
        else:
            raise ValueError(f"Dataset {dataset_name} is not suported!")

        x_test = torch.cat([x_test, x_tmp], dim=0)
        y_test = torch.cat([y_test, y_tmp], dim=0)
        domain += [cor] * x_tmp.shape[0]

    x_test = x_test.numpy().transpose((0, 2, 3, 1))
    y_test = y_test.numpy()
    samples = [[x_test[i], y_test[i], domain[i]] for i in range(x_test.shape[0])]

    return CustomCifarDataset(samples=samples, transform=transform)


# ---------------------------------------------------------------- data_loading.py
def get_test_loader(setting: str, adaptation: str, dataset_name: str, preprocess,
                    data_root_dir: str, domain_name: str, domain_names_all: list, severity: int, num_examples: int,
                    rng_seed: int, use_clip: bool, n_views: int = 64, delta_dirichlet: float = 0.,
                    batch_size: int = 128, shuffle: bool = False, workers: int = 4):
    # Fix seed again to ensure that the test sequence is the same for all methods
    random.seed(rng_seed)
    np.random.seed(rng_seed)

    data_dir = data_root_dir
    transform = None

    # create the test dataset
    if dataset_name in ["cifar10_c", "cifar100_c"]:
        test_dataset = create_cifarc_dataset(dataset_name=dataset_name,
                                             severity=severity,
                                             data_dir=data_dir,
                                             corruption=domain_name,
                                             corruptions_seq=domain_names_all,
                                             transform=transform,
                                             setting=setting)
    else:
        raise ValueError(f"Dataset '{dataset_name}' is not supported!")

    try:
        # shuffle the test sequence; deterministic behavior for a fixed random seed
        random.shuffle(test_dataset.samples)

        # randomly subsample the dataset if num_examples is specified
        if num_examples != -1:
            num_samples_orig = len(test_dataset)
            # logger.info(f"Changing the number of test samples from {num_samples_orig} to {num_examples}...")
            test_dataset.samples = random.sample(test_dataset.samples, k=min(num_examples, num_samples_orig))

        # prepare samples with respect to the considered setting
        if "mixed_domains" in setting:
            pass

        if "correlated" in setting:
            # sort the file paths by label
            if delta_dirichlet > 0.:
                test_dataset.samples = sort_by_dirichlet(delta_dirichlet, samples=test_dataset.samples)
            else:
                # sort the class labels by ascending order
                test_dataset.samples.sort(key=lambda x: x[1])
    except AttributeError:
        pass

    return test_dataset.samples


def sort_by_dirichlet(delta_dirichlet: float, samples: list):
    N = len(samples)
    samples_sorted = []
    class_labels = np.array([val[1] for val in samples])
    num_classes = int(np.max(class_labels) + 1)
    dirichlet_numchunks = num_classes

    time_start = time.time()
    time_duration = 120  # seconds until program terminates if no solution was found

    # https://github.com/IBM/probabilistic-federated-neural-matching/blob/f44cf4281944fae46cdce1b8bc7cde3e7c44bd70/experiment.py
    min_size = -1
    min_size_thresh = 10
    while min_size < min_size_thresh:  # prevent any chunk having too less data
        idx_batch = [[] for _ in range(dirichlet_numchunks)]
        idx_batch_cls = [[] for _ in range(dirichlet_numchunks)]  # contains data per each class
        for k in range(num_classes):
            idx_k = np.where(class_labels == k)[0]
            np.random.shuffle(idx_k)
            proportions = np.random.dirichlet(np.repeat(delta_dirichlet, dirichlet_numchunks))

            # balance
            proportions = np.array([p * (len(idx_j) < N / dirichlet_numchunks) for p, idx_j in zip(proportions, idx_batch)])
            proportions = proportions / proportions.sum()
            proportions = (np.cumsum(proportions) * len(idx_k)).astype(int)[:-1]
            idx_batch = [idx_j + idx.tolist() for idx_j, idx in zip(idx_batch, np.split(idx_k, proportions))]
            min_size = min([len(idx_j) for idx_j in idx_batch])

            # store class-wise data
            for idx_j, idx in zip(idx_batch_cls, np.split(idx_k, proportions)):
                idx_j.append(idx)

        # exit loop if no solution was found after a certain while
        if time.time() > time_start + time_duration:
            raise ValueError(f"Could not correlated sequence using dirichlet value '{delta_dirichlet}'. Try other value!")

    sequence_stats = []

    # create temporally correlated sequence
    for chunk in idx_batch_cls:
        cls_seq = list(range(num_classes))
        np.random.shuffle(cls_seq)
        for cls in cls_seq:
            idx = chunk[cls]
            samples_sorted.extend([samples[i] for i in idx])
            sequence_stats.extend(list(np.repeat(cls, len(idx))))

    return samples_sorted


# ---------------------------------------------------------------- test_time.py
def evaluate(SETTING, DATASET, TYPE, SEVERITY, NUM_EX=-1, RNG_SEED=1, DELTA_DIRICHLET=0.,
             DATA_DIR="./data"):
    valid_settings = ["reset_each_shift",           # reset the model state after the adaptation to a domain
                      "continual",                  # train on sequence of domain shifts without knowing when a shift occurs
                      "gradual",                    # sequence of gradually increasing / decreasing domain shifts
                      "mixed_domains",              # consecutive test samples are likely to originate from different domains
                      "correlated",                 # sorted by class label
                      "mixed_domains_correlated",   # mixed domains + sorted by class label
                      "gradual_correlated",         # gradual domain shifts + sorted by class label
                      "reset_each_shift_correlated"
                      ]
    assert SETTING in valid_settings, f"The setting '{SETTING}' is not supported! Choose from: {valid_settings}"

    domain_sequence = TYPE

    # prevent iterating multiple times over the same data in the mixed_domains setting
    domain_seq_loop = ["mixed"] if "mixed_domains" in SETTING else domain_sequence

    # setup the severities for the gradual setting
    if "gradual" in SETTING and DATASET in ["cifar10_c", "cifar100_c", "imagenet_c"] and len(SEVERITY) == 1:
        severities = [1, 2, 3, 4, 5, 4, 3, 2, 1]
    else:
        severities = SEVERITY

    loaders = []

    # start evaluation
    for i_dom, domain_name in enumerate(domain_seq_loop):
        reset = False
        if i_dom == 0 or "reset_each_shift" in SETTING:
            reset = True  # model.reset()

        for severity in severities:
            samples = get_test_loader(
                setting=SETTING,
                adaptation=None,
                dataset_name=DATASET,
                preprocess=None,
                data_root_dir=DATA_DIR,
                domain_name=domain_name,
                domain_names_all=domain_sequence,
                severity=severity,
                num_examples=NUM_EX,
                rng_seed=RNG_SEED,
                use_clip=False,
                n_views=None,
                delta_dirichlet=DELTA_DIRICHLET,
                batch_size=None,
                shuffle=False,
                workers=None
            )
            loaders.append({"domain": domain_name, "severity": severity, "reset": reset,
                            "samples": samples})
            reset = False  # the reset comes before the domain's first loader only
    return loaders
