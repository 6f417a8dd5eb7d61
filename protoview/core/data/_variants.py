"""ImageNet's test variants and DomainNet-126 as they lie on disk.

Nothing is downloaded. The layouts are the ones their authors release, and the class
subsets are the ones their evaluations score (the toolkit's ``imagenet_subsets.py``,
github.com/mariodoebler/test-time-adaptation commit 8b2ed63, which follows
hendrycks/imagenet-r ``eval.py`` and hendrycks/natural-adv-examples)::

    imagenet-a:ROOT          ROOT/<wnid>/*.jpg   200 classes of ImageNet-A
    imagenet-r:ROOT          ROOT/<wnid>/*.jpg   200 classes of ImageNet-R
    imagenet-sketch:ROOT     ROOT/<wnid>/*.JPEG  the 1000 classes (ImageNet-Sketch's ``sketch/``)
    imagenetv2:ROOT          ROOT/<k>/*.jpeg     k = 0..999, the class index (ImageNetV2)
    imagenet-d109:ROOT:DOMAIN  ROOT/<list file> + the images it names (109 classes)
    domainnet126:ROOT:DOMAIN   ROOT/<list file> + the images it names (126 classes)

**Class subsets.** ImageNet-A and -R hold 200 of the 1000 classes and ImageNet-D109 109:
an ImageNet-1k classifier is scored on those classes only, its logits restricted to them
(``output[:, indices_in_1k]``), as the authors' evaluation and the toolkit do. Without it
the accuracy is silently wrong (a prediction of one of the 800 other classes counts, and
entropy methods adapt on the 1000-way softmax). The dataset carries ``head_classes`` (its
class ``k`` is head class ``head_classes[k]``) and opening a 1000-class checkpoint with it
wraps the head in :class:`~protoview.core.heads.ClassSubset` (``protoview info`` says so);
a checkpoint whose head already has the subset's classes is used as it is. A class folder's
label is its place in the variant's class list, also when some folders are absent
(torchvision's ``ImageFolder`` would renumber the ones present). ImageNetV2's folders are
class indices, read as numbers (their sorted text order is not the class order: the
toolkit undoes that with ``IMAGENET_V2_MASK``, the same labels).

**Image lists.** DomainNet-126 (SHOT / AdaContrast's 126-class subset) and ImageNet-D109 are
lists of ``<relative path> <label>`` lines over DomainNet's images. The list of ``DOMAIN``
is read from ``ROOT/<DOMAIN>_list.txt`` or ``ROOT/<name>_lists/<DOMAIN>_list.txt``
(``domainnet126_lists`` / ``imagenet_d109_lists``: the toolkit's
``classification/datasets/<name>_lists/`` copied next to the images); paths are relative
to ``ROOT``. A class's name is the folder its images lie in.

**ImageNet-D's 164 classes** (``imagenet-d:ROOT:DOMAIN``, the toolkit's ``imagenet_d``;
:mod:`protoview.core.data._imagenet_d`): ``ROOT`` is the ``imagenet-d`` folder the
toolkit's symlinks make (``ROOT/<domain>/<class>/<file>``) and the list is
``imagenet_d_lists/<DOMAIN>_list.txt``; a line's class folder must be one of the 164 and its
label that class's index (the lists' own rule). The authors score an ImageNet-1k classifier
by mapping its 1000-way prediction many-to-one (``dataset.prediction_map``, a
:class:`~protoview.core.heads.PredictionMap`): opening a 1000-class checkpoint with it wraps
the head in :class:`~protoview.core.heads.MappedHead`, whose logits stay the 1000 (every
method adapts on them) while every accuracy, prediction and per-class number goes through
:func:`~protoview.core.heads.predicted_classes` (an ImageNet class of none of the 164 is
never right).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from protoview.core.data._folder import ImageFolderDataset
from protoview.core.data._imagenet_d import IMAGENET_D_CLASSES, IMAGENET_D_FROM_1K
from protoview.core.data._imagenet_wnids import IMAGENET_WNIDS
from protoview.core.heads import PredictionMap
from protoview.core.model import TransformSpec
from protoview.errors import DatasetError

IMAGENET_A_WNIDS: tuple[str, ...] = tuple(
    """
    n01498041 n01531178 n01534433 n01558993 n01580077 n01614925 n01616318 n01631663 n01641577
    n01669191 n01677366 n01687978 n01694178 n01698640 n01735189 n01770081 n01770393 n01774750
    n01784675 n01819313 n01820546 n01833805 n01843383 n01847000 n01855672 n01882714 n01910747
    n01914609 n01924916 n01944390 n01985128 n01986214 n02007558 n02009912 n02037110 n02051845
    n02077923 n02085620 n02099601 n02106550 n02106662 n02110958 n02119022 n02123394 n02127052
    n02129165 n02133161 n02137549 n02165456 n02174001 n02177972 n02190166 n02206856 n02219486
    n02226429 n02231487 n02233338 n02236044 n02259212 n02268443 n02279972 n02280649 n02281787
    n02317335 n02325366 n02346627 n02356798 n02361337 n02410509 n02445715 n02454379 n02486410
    n02492035 n02504458 n02655020 n02669723 n02672831 n02676566 n02690373 n02701002 n02730930
    n02777292 n02782093 n02787622 n02793495 n02797295 n02802426 n02814860 n02815834 n02837789
    n02879718 n02883205 n02895154 n02906734 n02948072 n02951358 n02980441 n02992211 n02999410
    n03014705 n03026506 n03124043 n03125729 n03187595 n03196217 n03223299 n03250847 n03255030
    n03291819 n03325584 n03355925 n03384352 n03388043 n03417042 n03443371 n03444034 n03445924
    n03452741 n03483316 n03584829 n03590841 n03594945 n03617480 n03666591 n03670208 n03717622
    n03720891 n03721384 n03724870 n03775071 n03788195 n03804744 n03837869 n03840681 n03854065
    n03888257 n03891332 n03935335 n03982430 n04019541 n04033901 n04039381 n04067472 n04086273
    n04099969 n04118538 n04131690 n04133789 n04141076 n04146614 n04147183 n04179913 n04208210
    n04235860 n04252077 n04252225 n04254120 n04270147 n04275548 n04310018 n04317175 n04344873
    n04347754 n04355338 n04366367 n04376876 n04389033 n04399382 n04442312 n04456115 n04482393
    n04507155 n04509417 n04532670 n04540053 n04554684 n04562935 n04591713 n04606251 n07583066
    n07695742 n07697313 n07697537 n07714990 n07718472 n07720875 n07734744 n07749582 n07753592
    n07760859 n07768694 n07831146 n09229709 n09246464 n09472597 n09835506 n11879895 n12057211
    n12144580 n12267677
    """.split()
)


IMAGENET_R_WNIDS: tuple[str, ...] = tuple(
    """
    n01443537 n01484850 n01494475 n01498041 n01514859 n01518878 n01531178 n01534433 n01614925
    n01616318 n01630670 n01632777 n01644373 n01677366 n01694178 n01748264 n01770393 n01774750
    n01784675 n01806143 n01820546 n01833805 n01843383 n01847000 n01855672 n01860187 n01882714
    n01910747 n01944390 n01983481 n01986214 n02007558 n02009912 n02051845 n02056570 n02066245
    n02071294 n02077923 n02085620 n02086240 n02088094 n02088238 n02088364 n02088466 n02091032
    n02091134 n02092339 n02094433 n02096585 n02097298 n02098286 n02099601 n02099712 n02102318
    n02106030 n02106166 n02106550 n02106662 n02108089 n02108915 n02109525 n02110185 n02110341
    n02110958 n02112018 n02112137 n02113023 n02113624 n02113799 n02114367 n02117135 n02119022
    n02123045 n02128385 n02128757 n02129165 n02129604 n02130308 n02134084 n02138441 n02165456
    n02190166 n02206856 n02219486 n02226429 n02233338 n02236044 n02268443 n02279972 n02317335
    n02325366 n02346627 n02356798 n02363005 n02364673 n02391049 n02395406 n02398521 n02410509
    n02423022 n02437616 n02445715 n02447366 n02480495 n02480855 n02481823 n02483362 n02486410
    n02510455 n02526121 n02607072 n02655020 n02672831 n02701002 n02749479 n02769748 n02793495
    n02797295 n02802426 n02808440 n02814860 n02823750 n02841315 n02843684 n02883205 n02906734
    n02909870 n02939185 n02948072 n02950826 n02951358 n02966193 n02980441 n02992529 n03124170
    n03272010 n03345487 n03372029 n03424325 n03452741 n03467068 n03481172 n03494278 n03495258
    n03498962 n03594945 n03602883 n03630383 n03649909 n03676483 n03710193 n03773504 n03775071
    n03888257 n03930630 n03947888 n04086273 n04118538 n04133789 n04141076 n04146614 n04147183
    n04192698 n04254680 n04266014 n04275548 n04310018 n04325704 n04347754 n04389033 n04409515
    n04465501 n04487394 n04522168 n04536866 n04552348 n04591713 n07614500 n07693725 n07695742
    n07697313 n07697537 n07714571 n07714990 n07718472 n07720875 n07734744 n07742313 n07745940
    n07749582 n07753275 n07753592 n07768694 n07873807 n07880968 n07920052 n09472597 n09835506
    n10565667 n12267677
    """.split()
)


IMAGENET_D109_TO_1K: tuple[int, ...] = tuple(
    int(k)
    for k in """
    403 407 310 414 954 425 790 430 435 831 309 785 703 447 455 457
    937 462 463 354 470 471 472 483 486 497 635 49 534 799 48 740
    103 543 998 549 767 545 552 130 567 587 515 334 746 417 604 104
    615 623 607 626 437 629 637 650 651 947 677 679 628 544 24 696
    701 145 721 953 963 748 761 491 776 71 784 349 792 797 113 801
    805 806 814 910 335 823 919 827 949 833 843 845 610 849 850 851
    672 292 859 866 920 466 875 513 879 883 889 897 340
    """.split()
)


@dataclass(frozen=True)
class Variant:
    """One layout: its spec word, display name, class folders (None: a list file), the
    head classes of an ImageNet-1k classifier its classes are (None: all, in order), the
    domains of a list layout, the class folders its list must name (None: any), and the
    many-to-one map an ImageNet-1k classifier's predictions are scored through."""

    key: str
    name: str
    folders: tuple[str, ...] | None
    head_classes: tuple[int, ...] | None = None
    domains: tuple[str, ...] = ()
    list_classes: tuple[str, ...] | None = None
    prediction_map: PredictionMap | None = None


_DOMAINS = ("clipart", "painting", "real", "sketch")
_ALL_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
#: ImageNet-D's scoring map (the toolkit's ``IMAGENET_D_MAPPING``).
IMAGENET_D_MAP = PredictionMap(IMAGENET_D_FROM_1K, len(IMAGENET_D_CLASSES), "ImageNet-D")
VARIANTS: dict[str, Variant] = {
    v.key: v
    for v in (
        Variant("imagenet-a", "ImageNet-A", IMAGENET_A_WNIDS,
                tuple(IMAGENET_WNIDS.index(w) for w in IMAGENET_A_WNIDS)),
        Variant("imagenet-r", "ImageNet-R", IMAGENET_R_WNIDS,
                tuple(IMAGENET_WNIDS.index(w) for w in IMAGENET_R_WNIDS)),
        Variant("imagenet-sketch", "ImageNet-Sketch", IMAGENET_WNIDS),
        Variant("imagenetv2", "ImageNetV2", tuple(str(k) for k in range(1000))),
        Variant("imagenet-d", "ImageNet-D", None, None, _ALL_DOMAINS, IMAGENET_D_CLASSES,
                IMAGENET_D_MAP),
        Variant("imagenet-d109", "ImageNet-D109", None, IMAGENET_D109_TO_1K, _ALL_DOMAINS),
        Variant("domainnet126", "DomainNet-126", None, None, _DOMAINS),
    )
}  # fmt: skip
#: Other spellings of the keys (what the toolkit and papers write).
_ALIASES = {
    "imageneta": "imagenet-a", "imagenet_a": "imagenet-a",
    "imagenetr": "imagenet-r", "imagenet_r": "imagenet-r",
    "imagenetsketch": "imagenet-sketch", "imagenet_sketch": "imagenet-sketch",
    "imagenet_k": "imagenet-sketch", "imagenet-v2": "imagenetv2", "imagenet_v2": "imagenetv2",
    "imagenetd": "imagenet-d", "imagenet_d": "imagenet-d",
    "imagenetd109": "imagenet-d109", "imagenet_d109": "imagenet-d109",
    "domainnet-126": "domainnet126", "domainnet_126": "domainnet126",
}  # fmt: skip


def parse_variant_spec(spec: str) -> tuple[Variant, str, str] | None:
    """``"imagenet-r:/data/imagenet-r"`` -> (variant, root, domain ""); None if not such a spec.

    Raises DatasetError naming the spec for a known kind with a missing or extra field.
    """
    head, sep, rest = spec.partition(":")
    word = head.strip().lower()
    key = _ALIASES.get(word, word)
    if not sep or key not in VARIANTS:
        return None
    variant = VARIANTS[key]
    if variant.domains:
        root, sep2, domain = rest.rpartition(":")
        if not sep2 or not root.strip() or not domain.strip():
            raise DatasetError(spec, f"expected {key}:ROOT:DOMAIN with DOMAIN one of "
                                     f"{', '.join(variant.domains)}")
        domain = domain.strip()
        if domain not in variant.domains:
            raise DatasetError(spec, f"unknown {variant.name} domain {domain!r}; choose one "
                                     f"of {', '.join(variant.domains)}")
        return variant, root.strip(), domain
    if not rest.strip():
        raise DatasetError(spec, f"expected {key}:ROOT (the folder of class folders)")
    return variant, rest.strip(), ""


def open_variant(
    spec: str, transform: TransformSpec, *, num_classes: int | None = None
) -> ImageFolderDataset:
    """Open an ImageNet variant or DomainNet-126 (see the module docstring).

    Raises
    ------
    DatasetError
        Naming the folder or list file: missing, a class folder the variant does not have, a
        list line that is malformed or names an absent image, no images.
    """
    parsed = parse_variant_spec(spec)
    if parsed is None:
        raise DatasetError(spec, "not an ImageNet variant or DomainNet-126 spec")
    variant, root, domain = parsed
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise DatasetError(root, f"{variant.name} folder does not exist")
    if variant.folders is not None:
        dataset = ImageFolderDataset(
            root, transform, num_classes=None, class_folders=variant.folders
        )
    else:
        dataset = ImageListDataset(root, _list_file(variant, root, domain), transform,
                                   classes=variant.list_classes, name=variant.name)
    if variant.head_classes is not None:
        dataset.head_classes = variant.head_classes  # type: ignore[attr-defined]
    if variant.prediction_map is not None:
        dataset.prediction_map = variant.prediction_map  # type: ignore[attr-defined]
    dataset.benchmark = {"dataset": variant.name, "domain": domain}  # type: ignore[attr-defined]
    if num_classes is not None:
        from protoview.core.data._base import check_labels

        check_labels(dataset.labels, root, num_classes)
    return dataset


def _list_file(variant: Variant, root: str, domain: str) -> str:
    folder = variant.key.replace("-", "_") + "_lists"
    candidates = [
        os.path.join(root, f"{domain}_list.txt"),
        os.path.join(root, folder, f"{domain}_list.txt"),
    ]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DatasetError(
        candidates[0],
        f"the {variant.name} list of domain {domain} is missing (also looked for "
        f"{candidates[1]}); copy the toolkit's classification/datasets/{folder}/"
        f"{domain}_list.txt there",
    )


class ImageListDataset(ImageFolderDataset):
    """Images named by a list file of ``<path relative to root> <label>`` lines.

    ``classes``: the class folders a line may name, label ``k`` the folder ``classes[k]``
    (ImageNet-D's 164; ``name`` says whose in a message); None: any folder, any label."""

    def __init__(self, root: str, list_file: str, transform: TransformSpec, *,
                 classes: Sequence[str] | None = None, name: str = "") -> None:
        self.list_file = list_file
        self.list_classes = None if classes is None else tuple(classes)
        self.list_name = name
        super().__init__(root, transform)
        self.source = f"{self.root} ({os.path.basename(list_file)})"

    def _scan(self) -> tuple[list[str], list[tuple[str, int]], int]:
        try:
            with open(self.list_file, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(self.list_file, f"cannot be read ({exc})") from None
        candidates: list[tuple[str, int]] = []
        names: dict[int, str] = {}
        absent: list[str] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not fields[1].isdigit():
                raise DatasetError(self.list_file, f"line {number} is not '<image path> <label>': "
                                                   f"{line.strip()[:80]!r}")
            relative, label = fields[0], int(fields[1])
            self._check_class(number, relative, label)
            path = os.path.join(self.root, *relative.split("/"))
            if not os.path.isfile(path):
                absent.append(relative)
                continue
            candidates.append((path, label))
            names.setdefault(label, relative.split("/")[-2] if "/" in relative else str(label))
        if absent:
            raise DatasetError(self.list_file, f"names {len(absent)} image(s) absent under "
                                               f"{self.root} (first: {absent[0]})")
        if not candidates:
            raise DatasetError(self.list_file, "lists no images")
        if self.list_classes is not None:
            return list(self.list_classes), candidates, 0
        count = max(names) + 1
        classes = [names.get(k, f"class {k}") for k in range(count)]
        return classes, candidates, 0

    def _check_class(self, number: int, relative: str, label: int) -> None:
        """A line of a list with fixed classes names one of them, by its own label."""
        if self.list_classes is None:
            return
        parts = relative.split("/")
        folder = parts[-2] if len(parts) >= 2 else ""
        if folder not in self.list_classes:
            raise DatasetError(self.list_file, f"line {number}: class folder {folder!r} is not "
                                               f"one of {self.list_name}'s "
                                               f"{len(self.list_classes)} classes")
        if label != self.list_classes.index(folder):
            raise DatasetError(self.list_file, f"line {number}: label {label} for class folder "
                                               f"{folder!r}, which is {self.list_name}'s class "
                                               f"{self.list_classes.index(folder)}")


def variant_spellings() -> Sequence[str]:
    """One line per layout, for the spellings of :func:`protoview.core.data.open_dataset`."""
    return [
        f"{v.key}:ROOT" + (":DOMAIN" if v.domains else "") for v in VARIANTS.values()
    ]


__all__ = ["VARIANTS", "ImageListDataset", "Variant", "open_variant", "parse_variant_spec"]
