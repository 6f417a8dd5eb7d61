"""RoTTA's label-correlated test stream (Dirichlet label shift per domain) as a test oracle.

Repository: github.com/BIT-DA/RoTTA, commit 67e34c900cdd355fc07e55edd4c577ea7b8ebcc9.
File: ``core/data/ttasampler.py``, class ``LabelDirichletDomainSequence`` (verbatim). It is
built in ``core/data/build.py`` as ``LabelDirichletDomainSequence(ds.data_source,
cfg.LOADER.SAMPLER.GAMMA, cfg.TEST.BATCH_SIZE)`` (``GAMMA`` 0.1 by default,
``core/configs/defaults.py``) and draws from NumPy's global generator (``np.random``).

Changed to run here, nothing else:
- ``DatumBase`` (``core/data/datasets/base_dataset.py``) is reduced to what the sampler
  reads (``label`` and ``domain``), instead of importing RoTTA's package;
- ``build_sampler`` and the ``cfg`` plumbing are left out.
"""
# ruff: noqa

import numpy as np
from torch.utils.data.sampler import Sampler
from typing import List
from collections import defaultdict
from numpy.random import dirichlet


class DatumBase:
    def __init__(self, img=None,  label=0, domain=0, classname=""):
        self._img = img
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def label(self):
        return self._label

    @property
    def domain(self):
        return self._domain


class LabelDirichletDomainSequence(Sampler):
    def __init__(self, data_source: List[DatumBase], gamma, batch_size, slots=None):

        self.domain_dict = defaultdict(list)
        self.classes = set()
        for i, item in enumerate(data_source):
            self.domain_dict[item.domain].append(i)
            self.classes.add(item.label)
        self.domains = list(self.domain_dict.keys())
        self.domains.sort()

        self.data_source = data_source
        self.gamma = gamma
        self.batch_size = batch_size
        self.num_class = len(self.classes)
        if slots is not None:
            self.num_slots = slots
        else:
            self.num_slots = self.num_class if self.num_class <= 100 else 100

    def __len__(self):
        return len(self.data_source)

    def __iter__(self):
        final_indices = []
        for domain in self.domains:
            indices = np.array(self.domain_dict[domain])
            labels = np.array([self.data_source[i].label for i in indices])

            class_indices = [np.argwhere(labels == y).flatten() for y in range(self.num_class)]
            slot_indices = [[] for _ in range(self.num_slots)]

            label_distribution = dirichlet([self.gamma] * self.num_slots, self.num_class)

            for c_ids, partition in zip(class_indices, label_distribution):
                for s, ids in enumerate(np.split(c_ids, (np.cumsum(partition)[:-1] * len(c_ids)).astype(int))):
                    slot_indices[s].append(ids)

            for s_ids in slot_indices:
                permutation = np.random.permutation(range(len(s_ids)))
                ids = []
                for i in permutation:
                    ids.extend(s_ids[i])
                final_indices.extend(indices[ids])

        return iter(final_indices)
