# ruff: noqa
"""The toolkit's ImageNet-D (164 classes) scoring as a test oracle: its image list and its accuracy.

Repository: github.com/mariodoebler/test-time-adaptation, commit
8b2ed63255d906b6b0afaefc6ae630b9ec4bdaa1. Files: ``classification/datasets/imagelist_dataset.py``
(``ImageList.build_index``, verbatim, as a function of the image root and the list file: how
``data_loading.py`` line 174-197 reads ``datasets/imagenet_d_lists/<domain>_list.txt`` for
``imagenet_d``, the image root ``<data root>/imagenet-d``) and ``classification/utils/eval_utils.py``
(``split_results_by_domain`` and ``get_accuracy``, verbatim). ``IMAGENET_D_MAPPING`` is the
toolkit's ``classification/datasets/imagenet_subsets.py`` one, held verbatim by
``tests/oracles/toolkit_imagenet_subsets.py``.

Changed to run here, nothing else: ``IMAGENET_D_MAPPING`` imported from that oracle instead of
``datasets.imagenet_subsets``; ``build_index`` a module function taking ``image_root`` (it was a
method reading ``self.image_root``); ``logger`` a plain ``logging`` logger.
"""

import os
import logging
import numpy as np
import torch
from typing import Union

from tests.oracles.toolkit_imagenet_subsets import IMAGENET_D_MAPPING

logger = logging.getLogger(__name__)


def build_index(image_root, label_file):
    """Build a list of <image path, class label, domain name> items.
    Input:
        label_file: Path to the file containing the image label pairs
    Returns:
        item_list: A list of <image path, class label> items.
    """
    with open(label_file, "r") as file:
        tmp_items = [line.strip().split() for line in file if line]

    item_list = []
    for img_file, label in tmp_items:
        img_file = f"{os.sep}".join(img_file.split("/"))
        img_path = os.path.join(image_root, img_file)
        domain_name = img_file.split(os.sep)[0]
        item_list.append((img_path, int(label), domain_name))

    return item_list


def split_results_by_domain(domain_dict: dict, data: list, predictions: torch.tensor):
    """
    Separates the label prediction pairs by domain
    Input:
        domain_dict: Dictionary, where the keys are the domain names and the values are lists with pairs [[label1, prediction1], ...]
        data: List containing [images, labels, domains, ...]
        predictions: Tensor containing the predictions of the model
    Returns:
        domain_dict: Updated dictionary containing the domain seperated label prediction pairs
    """

    labels, domains = data[1], data[2]
    assert predictions.shape[0] == labels.shape[0], "The batch size of predictions and labels does not match!"

    for i in range(labels.shape[0]):
        if domains[i] in domain_dict.keys():
            domain_dict[domains[i]].append([labels[i].item(), predictions[i].item()])
        else:
            domain_dict[domains[i]] = [[labels[i].item(), predictions[i].item()]]

    return domain_dict


def get_accuracy(model: torch.nn.Module,
                 data_loader: torch.utils.data.DataLoader,
                 dataset_name: str,
                 domain_name: str,
                 setting: str,
                 domain_dict: dict,
                 print_every: int,
                 device: Union[str, torch.device]):

    num_correct = 0.
    num_samples = 0
    with torch.no_grad():
        for i, data in enumerate(data_loader):
            imgs, labels = data[0], data[1]
            output = model([img.to(device) for img in imgs]) if isinstance(imgs, list) else model(imgs.to(device))
            predictions = output.argmax(1)

            if dataset_name == "imagenet_d" and domain_name != "none":
                mapping_vector = list(IMAGENET_D_MAPPING.values())
                predictions = torch.tensor([mapping_vector[pred] for pred in predictions], device=device)

            num_correct += (predictions == labels.to(device)).float().sum()

            if "mixed_domains" in setting and len(data) >= 3:
                domain_dict = split_results_by_domain(domain_dict, data, predictions)

            # track progress
            num_samples += imgs[0].shape[0] if isinstance(imgs, list) else imgs.shape[0]
            if print_every > 0 and (i+1) % print_every == 0:
                logger.info(f"#batches={i+1:<6} #samples={num_samples:<9} error = {1 - num_correct / num_samples:.2%}")

            if dataset_name == "ccc" and num_samples >= 7500000:
                break

    accuracy = num_correct.item() / num_samples
    return accuracy, domain_dict, num_samples
